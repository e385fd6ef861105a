"""The persona access rules of the issue, as (env, persona, action, allowed) cases.

Asked of the rendered manifests (test_isolation) and of a real API server (test_real_api_server).
"""

RUN_JOB = ("create", "batch", "jobs")
SCHEDULE = ("create", "batch", "cronjobs")
ROLL_OUT = ("patch", "apps", "deployments")
READ_PODS = ("list", "", "pods")
READ_SECRETS = ("get", "", "secrets")

PERSONA_CASES = [
    # data scientist: edit in dev, view in staging and prod
    ("dev", "data_scientist", RUN_JOB, True),
    ("dev", "data_scientist", SCHEDULE, True),
    ("dev", "data_scientist", ROLL_OUT, False),
    ("staging", "data_scientist", READ_PODS, True),
    ("staging", "data_scientist", RUN_JOB, False),
    ("prod", "data_scientist", READ_PODS, True),
    ("prod", "data_scientist", RUN_JOB, False),
    ("prod", "data_scientist", ("delete", "", "pods"), False),
    # ci: deploy in staging and prod
    ("staging", "ci", ROLL_OUT, True),
    ("prod", "ci", ROLL_OUT, True),
    ("prod", "ci", ("patch", "autoscaling", "horizontalpodautoscalers"), True),
    ("prod", "ci", SCHEDULE, True),
    # ml engineer: deploys up to staging; prod changes only through ci
    ("staging", "ml_engineer", ROLL_OUT, True),
    ("prod", "ml_engineer", ROLL_OUT, False),
    ("prod", "ml_engineer", RUN_JOB, False),
    ("prod", "ml_engineer", READ_PODS, True),
]
# nobody: Secrets, RBAC, namespaces
FORBIDDEN_TO_ALL = [READ_SECRETS, ("create", "rbac.authorization.k8s.io", "rolebindings"), ("delete", "", "namespaces")]

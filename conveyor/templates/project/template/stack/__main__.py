"""The Pulumi program of this project's environments: Conveyor's own (`infra`), unchanged.

What an environment is made of (platform, ports, access, storage) is stack configuration
(Pulumi.<stack>.yaml), so the program itself is the platform's; this file only runs it.
"""

import runpy

runpy.run_module("infra", run_name="__main__", alter_sys=True)

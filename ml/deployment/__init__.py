"""Champion/challenger decision and BentoML packaging of the champion."""

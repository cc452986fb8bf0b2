"""Wire contracts: the pydantic models that cross a process boundary.

HTTP bodies, queue messages and webhook payloads are these models; `schemas/` is generated
from them (`closeloop schemas export`) and a test fails when the two drift apart.
"""

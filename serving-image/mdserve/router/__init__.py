"""The built-in traffic router of modeldeploy (``python -m mdserve router``).

``mdserve.router.table`` (the route-table schema) imports only pydantic and the standard
library so that the operator can build and validate tables without the serving dependencies.
"""

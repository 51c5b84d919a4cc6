"""The kopf operator: RateLimitPolicy custom resources → one policy set in the shared Redis → pods.

`crd` renders the CustomResourceDefinition from the pydantic model (the single source), `compile`
turns CRs into a versioned policy set, `status` computes conditions from pod acknowledgements, and
`handlers` are the thin kopf glue run by `floodgate operator`.
"""

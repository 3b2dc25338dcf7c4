"""Traffic split between variants and revisions: route tables, router objects, HTTPRoutes. Pure renderers."""

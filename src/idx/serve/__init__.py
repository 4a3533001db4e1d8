"""`idx serve`: the index as a local search service and web app.

session.Session holds the index (model and vectors loaded once, the catalog released between
requests so a running `idx add` keeps writing); app.create_app answers the JSON API and serves
the page in static/; server.serve listens through uvicorn.
"""

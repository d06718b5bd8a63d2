"""`tlcv serve`: a run behind an HTTP API and a self-contained web page (FastAPI + uvicorn)."""

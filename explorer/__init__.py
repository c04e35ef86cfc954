"""`chromatic explore`: a local web app over the store's feature spaces and model runs.

`explorer.app.create_app` builds the FastAPI app; the page (explorer/static) draws
with plotly.js served by the app itself, so it works with no network.
Imports point one way: explorer -> fusion -> encoders -> featurestore.
"""

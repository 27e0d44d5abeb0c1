"""What sequences achieved: results per sequence and step with rates and a daily series
(results), enrollment and step counts (stats), and human opens and clicks (engagement).

Reads only: calls sequences.catalog, the shared base, domain and store.
"""

"""Framework-neutral core of the web map: API object, storage interface, handlers.

Nothing here imports a web framework; ``webmap.app`` is the flask adapter. Start with
:class:`webmap.core.api.WebMapAPI`.
"""

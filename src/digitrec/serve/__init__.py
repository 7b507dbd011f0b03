"""The web service: an HTTP API over the recognizer and the drawing page (``digitrec serve``)."""

"""Admission: the webhook server, its certificate, and the validation of Ballast's own objects."""

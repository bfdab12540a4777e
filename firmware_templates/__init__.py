"""Jinja2 templates of the generated C (one template per generated file), shipped as package data."""

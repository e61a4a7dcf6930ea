"""Carriers between dcformat's numpy arrays and other frameworks' tensors.

Each module here converts without rounding and imports its framework only inside its
functions, so importing it costs nothing to a user without that framework. It sits
below the public API (``safe_open`` hands out torch tensors through it) and imports
only the format's vocabulary and the errors.
"""

"""Local stand-ins for the services a release talks to (GitHub, PyPI, OSV, Sigstore, OIDC).

They ship with the package because ``upm-ci rehearse`` starts them on 127.0.0.1 for users'
own projects; the tests use the same ones.
"""

"""The networks (TransUNet, decoder) and the processes that train them.

The guided diffusion with its samplers, and the direct separator. Every class takes typed
arguments (no config object). In the package order ``data <- models <- utils <- scripts``
it may import ``data`` only.
"""

"""Endpoints, pools and balancers: pure choices about where traffic goes next."""

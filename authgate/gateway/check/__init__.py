"""The check path: external authorization for ingress-nginx, Envoy/Istio, Traefik and
Caddy. One decision engine; each proxy convention is a thin adapter around it."""

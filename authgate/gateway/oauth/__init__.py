"""The OAuth 2.0 / OpenID Connect authorization server, one module per concern and,
where it maps, per RFC: errors (RFC 6749 §5.2), client authentication (RFC 6749 §2.3,
RFC 7523), grants and the token endpoint (RFC 6749, RFC 7636, RFC 8707),
introspection (RFC 7662), revocation (RFC 7009), authorization and consent."""

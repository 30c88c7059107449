//! SCIM 2.0 grammar that is pure logic (RFC 7643/7644).

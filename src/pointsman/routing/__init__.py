"""Pure routing decisions: route tables, path patterns and the content-routing contract."""

"""The IR's reserved words: no value, graph or op may take one of these names."""

KEYWORDS = frozenset(
    {"graph", "return", "inf", "nan", "true", "false", "f16", "f32", "f64", "i32", "i64", "bool"}
)

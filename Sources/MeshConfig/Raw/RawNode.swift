/// A YAML value as the decoders see it: already composed, aliases expanded, merge keys applied,
/// and every node still knowing the line it started on.
///
/// Yams' `Node` stays inside ``YAMLDocuments``; nothing past this file depends on Yams.
struct RawNode: Sendable {
    enum Value: Sendable {
        case scalar(String, ScalarKind)
        case mapping([RawEntry])
        case sequence([RawNode])
    }

    /// What a plain scalar resolves to under YAML 1.1 rules (quoted scalars are always strings).
    enum ScalarKind: Sendable {
        case string
        case int
        case float
        case bool
        case null
    }

    var value: Value
    /// 1-based line where the node starts.
    var line: Int

    var isNull: Bool {
        if case .scalar(_, .null) = self.value { return true }
        return false
    }

    /// How the node is named in a type error: "a string (\"80\")", "a map", "a list".
    var kindDescription: String {
        switch self.value {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .scalar(let text, let kind):
            switch kind {
            case .string: return "a string (\"\(text.count > 40 ? String(text.prefix(40)) + "…" : text)\")"
            case .int: return "an integer (\(text))"
            case .float: return "a number (\(text))"
            case .bool: return "a boolean (\(text))"
            case .null: return "null"
            }
        }
    }
}

/// One `key: value` pair of a YAML map.
struct RawEntry: Sendable {
    var key: String
    /// Line of the key: where diagnostics about this field point.
    var line: Int
    var value: RawNode
}

/// Istio's `StringMatch` (`exact`, `prefix` or `regex`) and the maps of them that headers and query
/// parameters use.
enum StringMatchDecoder {
    static let schema = Schema(["exact", "prefix", "regex"])

    /// A match that must name one of its kinds (uri, method, authority).
    static func required(_ field: Field) -> StringMatch? {
        guard case .some(let match) = self.decode(field, prefix: true) else { return nil }
        if match == nil { field.error("set one of exact, prefix or regex") }
        return match
    }

    /// `name: {exact|prefix|regex}` entries; `name: {}` asks only for presence.
    static func named(_ field: Field, lowercased: Bool, prefix: Bool = true) -> [HeaderMatch] {
        guard let entries = field.entries() else { return [] }
        return entries.compactMap { entry in
            let item = Field(node: entry.value, path: field.childPath(entry.key), line: entry.line, context: field.context)
            if entry.key.isEmpty { item.error("empty name") }
            let match: StringMatch??
            if entry.value.isNull {
                match = .some(nil)
            } else {
                match = self.decode(item, prefix: prefix)
            }
            guard case .some(let value) = match, !entry.key.isEmpty else { return nil }
            return HeaderMatch(name: lowercased ? entry.key.lowercased() : entry.key, match: value)
        }
    }

    /// nil when invalid (reported); `.some(nil)` for an empty match.
    private static func decode(_ field: Field, prefix allowPrefix: Bool) -> StringMatch?? {
        if case .scalar(let text, _) = field.node.value {
            field.error("expected a map such as {exact: \(text)}, got \(field.node.kindDescription)")
            return nil
        }
        guard let map = field.map(Self.schema) else { return nil }
        let kinds = ["exact", "prefix", "regex"].filter { map[$0] != nil }
        if kinds.count > 1 {
            field.error("set only one of exact, prefix or regex, not \(kinds.joined(separator: " and "))")
            return nil
        }
        guard let kind = kinds.first, let valueField = map[kind], let value = valueField.string() else {
            return kinds.isEmpty ? .some(nil) : nil
        }
        switch kind {
        case "exact":
            return .exact(value)
        case "prefix":
            guard allowPrefix else {
                valueField.error("query parameters match exact or regex only, not prefix")
                return nil
            }
            return .prefix(value)
        default:
            do {
                _ = try RE2Regex(value)
            } catch {
                valueField.error("\(error)")
                return nil
            }
            return .regex(value)
        }
    }
}

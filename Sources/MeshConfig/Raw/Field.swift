/// Where decoding happens: the file being read and the sink its diagnostics go to.
struct DecodeContext {
    let file: String
    let sink: DiagnosticSink

    func location(_ line: Int) -> SourceLocation { SourceLocation(file: self.file, line: line) }
}

/// One YAML value at a known place: its node, its diagnostic path
/// (`VirtualService/reviews.spec.http[0].route`) and the line diagnostics about it point at (the
/// key's line for a map entry, the item's line for a list item).
///
/// The typed readers report a type error and return nil when the value has another shape.
struct Field {
    let node: RawNode
    let path: String
    let line: Int
    let context: DecodeContext

    var location: SourceLocation { self.context.location(self.line) }

    /// The path of a field of this map: `path.key` (just `key` at the top of a file).
    func childPath(_ key: String) -> String { self.path.isEmpty ? key : "\(self.path).\(key)" }

    func error(_ message: String) { self.context.sink.error(at: self.location, path: self.path, message) }
    func warning(_ message: String) { self.context.sink.warning(at: self.location, path: self.path, message) }

    private func typeError(expected: String) {
        self.error("expected \(expected), got \(self.node.kindDescription)")
    }

    /// Any scalar as its text (a number or boolean where a string belongs is taken as written).
    func string() -> String? {
        guard case .scalar(let text, let kind) = self.node.value, kind != .null else {
            self.typeError(expected: "a string")
            return nil
        }
        return text
    }

    /// A plain YAML integer (decimal, `0x`, `0o` or `0b`; `_` separators allowed), within `range`.
    func int(in range: ClosedRange<Int>? = nil) -> Int? {
        guard case .scalar(let text, .int) = self.node.value else {
            self.typeError(expected: "an integer")
            return nil
        }
        guard let value = Self.parseInteger(text) else {
            self.error("\(text) is not an integer Meshgate can read")
            return nil
        }
        if let range, !range.contains(value) {
            self.error("\(value) is out of range \(range.lowerBound)..\(range.upperBound)")
            return nil
        }
        return value
    }

    /// A plain YAML number (integer or decimal), finite and within `range`.
    func number(in range: ClosedRange<Double>? = nil) -> Double? {
        guard case .scalar(let text, let kind) = self.node.value, kind == .int || kind == .float else {
            self.typeError(expected: "a number")
            return nil
        }
        let value = kind == .int ? Self.parseInteger(text).map(Double.init) : Double(text.replacingOccurrences(of: "_", with: ""))
        guard let value, value.isFinite else {
            self.error("\(text) is not a number Meshgate can read")
            return nil
        }
        if let range, !range.contains(value) {
            self.error("\(text) is out of range \(Self.decimal(range.lowerBound))..\(Self.decimal(range.upperBound))")
            return nil
        }
        return value
    }

    /// `100` rather than `100.0` for whole numbers, in messages.
    private static func decimal(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// A port number, 1...65535.
    func port() -> Int? { self.int(in: 1...65535) }

    func bool() -> Bool? {
        guard case .scalar(let text, .bool) = self.node.value else {
            self.typeError(expected: "true or false")
            return nil
        }
        return ["true", "yes", "on"].contains(text.lowercased())
    }

    /// A duration such as `30s`, `1.5s`, `500ms`, `1m`, `1h30m`.
    func duration() -> Duration? {
        guard case .scalar(let text, let kind) = self.node.value, kind == .string else {
            self.typeError(expected: "a duration such as 30s or 500ms")
            return nil
        }
        switch DurationParser.parse(text) {
        case .success(let duration):
            return duration
        case .failure(let problem):
            self.error("invalid duration \"\(text)\": \(problem.message)")
            return nil
        }
    }

    /// The value of `values` the scalar names (case-sensitive, as Istio's enums are).
    func oneOf<T>(_ values: KeyValuePairs<String, T>) -> T? {
        guard let text = self.string() else { return nil }
        if let match = values.first(where: { $0.key == text }) { return match.value }
        self.error("invalid value \"\(text)\"; expected one of \(values.map(\.key).joined(separator: ", "))")
        return nil
    }

    func entries() -> [RawEntry]? {
        guard case .mapping(let entries) = self.node.value else {
            self.typeError(expected: "a map")
            return nil
        }
        return entries
    }

    /// A map of the given schema: unknown, unsupported and duplicated keys are reported here.
    func map(_ schema: Schema) -> MapReader? {
        guard let entries = self.entries() else { return nil }
        return MapReader(entries: entries, at: self, schema: schema)
    }

    /// The items of a list, each with its `[i]` path and line.
    func list() -> [Field]? {
        guard case .sequence(let items) = self.node.value else {
            self.typeError(expected: "a list")
            return nil
        }
        return items.enumerated().map { index, item in
            Field(node: item, path: "\(self.path)[\(index)]", line: item.line, context: self.context)
        }
    }

    /// A list of maps of one schema; items of another shape are reported and left out.
    func maps(_ schema: Schema) -> [MapReader]? {
        self.list()?.compactMap { $0.map(schema) }
    }

    /// A list of strings with the place of each.
    func strings() -> [(value: String, field: Field)]? {
        self.list()?.compactMap { item in item.string().map { ($0, item) } }
    }

    /// A `string: string` map such as labels.
    func stringMap() -> [String: String]? {
        guard let entries = self.entries() else { return nil }
        var result: [String: String] = [:]
        for entry in entries {
            let item = Field(node: entry.value, path: self.childPath(entry.key), line: entry.line, context: self.context)
            if result[entry.key] != nil {
                item.error("duplicate key '\(entry.key)'")
            } else if let value = item.string() {
                result[entry.key] = value
            }
        }
        return result
    }

    static func parseInteger(_ text: String) -> Int? {
        var digits = Substring(text.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if let sign = digits.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            digits = digits.dropFirst()
        }
        var radix = 10
        if let (prefix, base) = [("0x", 16), ("0o", 8), ("0b", 2)].first(where: { digits.hasPrefix($0.0) }) {
            radix = base
            digits = digits.dropFirst(prefix.count)
        }
        guard !digits.isEmpty, let magnitude = Int(digits, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }
}

/// The fields one kind of YAML map may have, and what to say about the others.
struct Schema {
    /// Fields Meshgate reads.
    var fields: Set<String>
    /// Valid Istio fields Meshgate does not implement yet: a warning, and the value is ignored.
    var unsupported: Set<String> = []
    /// Fields refused with a message of their own (an error).
    var refused: [String: String] = [:]
    /// Fields accepted and ignored without a word (Kubernetes bookkeeping).
    var ignored: Set<String> = []
    /// What an unknown field is: an error for Istio's strict schema, a warning elsewhere.
    var unknownSeverity: Diagnostic.Severity = .error

    init(
        _ fields: Set<String>,
        unsupported: Set<String> = [],
        refused: [String: String] = [:],
        ignored: Set<String> = [],
        unknownSeverity: Diagnostic.Severity = .error
    ) {
        self.fields = fields
        self.unsupported = unsupported
        self.refused = refused
        self.ignored = ignored
        self.unknownSeverity = unknownSeverity
    }
}

/// Reads one YAML map by its ``Schema``. Creating it reports every key the schema does not read;
/// the typed getters then report wrong shapes. A null value counts as absent, as in Kubernetes.
struct MapReader {
    /// The map itself.
    let field: Field
    private let entries: [String: RawEntry]

    init(entries list: [RawEntry], at field: Field, schema: Schema) {
        self.field = field
        var entries: [String: RawEntry] = [:]
        for entry in list {
            let path = field.childPath(entry.key)
            let location = field.context.location(entry.line)
            let sink = field.context.sink
            if let first = entries[entry.key] {
                sink.error(at: location, path: path, "duplicate key '\(entry.key)' (first at line \(first.line))")
                continue
            }
            entries[entry.key] = entry
            if schema.fields.contains(entry.key) || schema.ignored.contains(entry.key) { continue }
            if let message = schema.refused[entry.key] {
                sink.error(at: location, path: path, message)
            } else if schema.unsupported.contains(entry.key) {
                sink.warning(at: location, path: path, "not supported yet; ignored")
            } else {
                let known = schema.fields.union(schema.unsupported).union(schema.refused.keys).union(schema.ignored)
                let hint = closestName(to: entry.key, among: known).map { " (did you mean '\($0)'?)" } ?? ""
                sink.report(schema.unknownSeverity, at: location, path: path, "unknown field '\(entry.key)'\(hint)")
            }
        }
        self.entries = entries
    }

    var path: String { self.field.path }
    var location: SourceLocation { self.field.location }
    var context: DecodeContext { self.field.context }

    /// The field `key` when it is present and not null.
    subscript(_ key: String) -> Field? {
        guard let entry = self.entries[key], !entry.value.isNull else { return nil }
        return Field(node: entry.value, path: self.field.childPath(key), line: entry.line, context: self.context)
    }

    /// The field `key`, or an error "… is required" at this map when it is absent.
    func required(_ key: String) -> Field? {
        if let field = self[key] { return field }
        self.context.sink.error(at: self.location, path: self.field.childPath(key), "required field is missing")
        return nil
    }

    func string(_ key: String) -> String? { self[key]?.string() }
    func int(_ key: String, in range: ClosedRange<Int>? = nil) -> Int? { self[key]?.int(in: range) }
    func bool(_ key: String) -> Bool? { self[key]?.bool() }
    func duration(_ key: String) -> Duration? { self[key]?.duration() }
    func stringMap(_ key: String) -> [String: String]? { self[key]?.stringMap() }
    func map(_ key: String, _ schema: Schema) -> MapReader? { self[key]?.map(schema) }
    func maps(_ key: String, _ schema: Schema) -> [MapReader]? { self[key]?.maps(schema) }
}

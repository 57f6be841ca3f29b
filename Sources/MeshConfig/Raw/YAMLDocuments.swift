import Yams

/// Splits one file into its YAML documents (`---`), as ``RawNode`` trees with lines.
///
/// Syntax errors become diagnostics with the line; the documents before the error are kept, so the
/// rest of the file is still checked as far as it could be read.
enum YAMLDocuments {
    /// Deeper nesting than this is refused before Yams sees it: composing recurses once per level,
    /// and no Istio resource comes near it.
    static let maxNesting = 100
    /// Nodes one document may expand to (aliases included): a guard against alias bombs.
    static let maxNodes = 200_000

    static func parse(_ text: String, file: String, sink: DiagnosticSink) -> [RawNode] {
        if let (depth, line) = self.nestingBound(of: text), depth > self.maxNesting {
            sink.error(
                at: SourceLocation(file: file, line: line), path: "",
                "YAML nests deeper than \(self.maxNesting) levels here; not read"
            )
            return []
        }
        var documents: [RawNode] = []
        do {
            let parser = try Parser(yaml: text)
            while let root = try parser.nextRoot() {
                var converter = Converter(file: file, sink: sink)
                if let node = converter.convert(root, line: 1) {
                    documents.append(node)
                } else {
                    sink.error(
                        at: SourceLocation(file: file, line: root.mark?.line ?? 1), path: "",
                        "this YAML document expands to more than \(self.maxNodes) nodes (too many aliases?); not read"
                    )
                }
            }
        } catch let error as YamlError {
            let (line, message) = self.describe(error, in: text)
            // An error found at the end of the text points at its last line, not past it.
            let lastLine = max(1, text.split(separator: "\n", omittingEmptySubsequences: false).count - (text.hasSuffix("\n") ? 1 : 0))
            sink.error(at: SourceLocation(file: file, line: min(line, lastLine)), path: "", "YAML syntax error: \(message)")
        } catch {
            sink.error(at: SourceLocation(file: file, line: 1), path: "", "cannot read YAML: \(error)")
        }
        return documents
    }

    /// The line and a one-line message of a Yams error.
    static func describe(_ error: YamlError, in text: String) -> (line: Int, message: String) {
        func withContext(_ context: YamlError.Context?, _ problem: String) -> String {
            guard let context else { return problem }
            return "\(problem) (\(context.text) at line \(context.mark.line))"
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
            .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            return (mark.line, withContext(context, problem))
        case .reader(let problem, let offset, _, _):
            let line = offset.map { offset in 1 + text.prefix(offset).reduce(0) { $0 + ($1 == "\n" ? 1 : 0) } } ?? 1
            return (line, problem)
        default:
            return (1, "\(error)")
        }
    }

    /// A cheap upper bound of how deep `text` nests, with the line where it is deepest: block
    /// indentation plus `- ` indicators plus open flow brackets outside quotes and comments.
    static func nestingBound(of text: String) -> (depth: Int, line: Int)? {
        var deepest: (depth: Int, line: Int)?
        var flow = 0
        var lineNumber = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let bytes = Array(line)
            var index = 0
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
            var block = index + 1
            // Compact nested sequences: `- - - x`.
            while index + 1 < bytes.count, bytes[index] == UInt8(ascii: "-"), bytes[index + 1] == UInt8(ascii: " ") {
                block += 1
                index += 2
            }
            var deepestFlow = flow
            var quote: UInt8?
            var previous = UInt8(ascii: " ")
            while index < bytes.count {
                let byte = bytes[index]
                if let open = quote {
                    if byte == UInt8(ascii: "\\"), open == UInt8(ascii: "\"") {
                        index += 1
                    } else if byte == open {
                        quote = nil
                    }
                } else if byte == UInt8(ascii: "#"), previous == UInt8(ascii: " ") || previous == UInt8(ascii: "\t") {
                    break
                } else if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") {
                    if " \t[{,:".utf8.contains(previous) { quote = byte }
                } else if byte == UInt8(ascii: "[") || byte == UInt8(ascii: "{") {
                    flow += 1
                    deepestFlow = max(deepestFlow, flow)
                } else if byte == UInt8(ascii: "]") || byte == UInt8(ascii: "}") {
                    flow = max(0, flow - 1)
                }
                previous = byte
                index += 1
            }
            if block + deepestFlow > deepest?.depth ?? 0 {
                deepest = (block + deepestFlow, lineNumber)
            }
        }
        return deepest
    }
}

/// Yams `Node` → ``RawNode``: resolves scalar kinds, expands merge keys (`<<`), counts nodes.
private struct Converter {
    let file: String
    let sink: DiagnosticSink
    var budget = YAMLDocuments.maxNodes

    init(file: String, sink: DiagnosticSink) {
        self.file = file
        self.sink = sink
    }

    /// nil when the document is larger than the node budget.
    mutating func convert(_ node: Node, line parentLine: Int) -> RawNode? {
        self.budget -= 1
        guard self.budget >= 0 else { return nil }
        let line = node.mark?.line ?? parentLine
        switch node {
        case .scalar(let scalar):
            return RawNode(value: .scalar(scalar.string, Self.kind(of: node)), line: line)
        case .sequence(let sequence):
            var items: [RawNode] = []
            for item in sequence {
                guard let converted = self.convert(item, line: line) else { return nil }
                items.append(converted)
            }
            return RawNode(value: .sequence(items), line: line)
        case .mapping(let mapping):
            var entries: [RawEntry] = []
            var merged: [RawEntry] = []
            for (key, value) in mapping {
                let keyLine = key.mark?.line ?? line
                guard case .scalar(let keyScalar) = key else {
                    self.sink.error(
                        at: SourceLocation(file: self.file, line: keyLine), path: "",
                        "map keys must be plain strings, not \(key.isMapping ? "maps" : "lists")"
                    )
                    continue
                }
                guard let converted = self.convert(value, line: keyLine) else { return nil }
                if key.tag.description == Tag.Name.merge.rawValue {
                    merged += self.mergeSources(converted, line: keyLine)
                } else {
                    entries.append(RawEntry(key: keyScalar.string, line: keyLine, value: converted))
                }
            }
            // Explicit keys win over merged ones; among merged maps the first one wins.
            var present = Set(entries.map(\.key))
            for entry in merged where !present.contains(entry.key) {
                present.insert(entry.key)
                entries.append(entry)
            }
            return RawNode(value: .mapping(entries), line: line)
        }
    }

    private func mergeSources(_ node: RawNode, line: Int) -> [RawEntry] {
        switch node.value {
        case .mapping(let entries):
            return entries
        case .sequence(let items):
            return items.flatMap { self.mergeSources($0, line: line) }
        case .scalar:
            self.sink.error(at: SourceLocation(file: self.file, line: line), path: "", "a merge key (<<) needs a map or a list of maps")
            return []
        }
    }

    private static func kind(of node: Node) -> RawNode.ScalarKind {
        switch node.tag.description {
        case Tag.Name.int.rawValue: return .int
        case Tag.Name.float.rawValue: return .float
        case Tag.Name.bool.rawValue: return .bool
        case Tag.Name.null.rawValue: return .null
        default: return .string
        }
    }
}

extension Node {
    fileprivate var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }
}

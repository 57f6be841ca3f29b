/// Where a value came from: a file and a 1-based line.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    public var description: String { "\(self.file):\(self.line)" }
}

/// One finding of decoding or validation, printed as `FILE:LINE: error|warning|info: PATH: message`.
///
/// `path` names the resource and the field, e.g. `VirtualService/reviews.spec.http[0].route[1].weight`.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public enum Severity: String, Sendable, Hashable, Comparable {
        case error
        case warning
        case info

        private var rank: Int {
            switch self {
            case .error: return 0
            case .warning: return 1
            case .info: return 2
            }
        }

        public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rank < rhs.rank }
    }

    public var severity: Severity
    public var location: SourceLocation?
    public var path: String
    public var message: String
    /// A reference to something no resource declares (a host, port, subset, gateway or delegate).
    /// Istio accepts such an object and only its analyzer warns, so this is a warning; `meshgate
    /// validate --strict` makes it an error.
    public var isDanglingReference: Bool

    public init(_ severity: Severity, at location: SourceLocation?, path: String, _ message: String, isDanglingReference: Bool = false) {
        self.severity = severity
        self.location = location
        self.path = path
        self.message = message
        self.isDanglingReference = isDanglingReference
    }

    public var description: String {
        let place = self.location.map { "\($0): " } ?? ""
        let path = self.path.isEmpty ? "" : "\(self.path): "
        return "\(place)\(self.severity.rawValue): \(path)\(self.message)"
    }
}

extension Array where Element == Diagnostic {
    public var hasErrors: Bool { self.contains { $0.severity == .error } }
}

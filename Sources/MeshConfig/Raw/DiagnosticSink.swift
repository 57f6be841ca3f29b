/// Collects every diagnostic of one load. Loading never stops at the first problem.
///
/// A reference type so that the many small readers of one load can share it; a load runs on one
/// thread and the sink never leaves it.
final class DiagnosticSink {
    private(set) var diagnostics: [Diagnostic] = []

    func report(_ severity: Diagnostic.Severity, at location: SourceLocation?, path: String, _ message: String) {
        self.diagnostics.append(Diagnostic(severity, at: location, path: path, message))
    }

    func error(at location: SourceLocation?, path: String, _ message: String) {
        self.report(.error, at: location, path: path, message)
    }

    func warning(at location: SourceLocation?, path: String, _ message: String) {
        self.report(.warning, at: location, path: path, message)
    }

    /// A reference to something undeclared: a warning, an error under `--strict`.
    func danglingReference(at location: SourceLocation?, path: String, _ message: String) {
        self.diagnostics.append(Diagnostic(.warning, at: location, path: path, message, isDanglingReference: true))
    }

    func info(at location: SourceLocation?, path: String, _ message: String) {
        self.report(.info, at: location, path: path, message)
    }

    /// Every diagnostic, those without a place first, then by file and line; the order of
    /// reporting is kept among equals.
    var sorted: [Diagnostic] {
        self.diagnostics.enumerated().sorted { lhs, rhs in
            let (left, right) = (lhs.element.location, rhs.element.location)
            switch (left, right) {
            case (nil, nil): return lhs.offset < rhs.offset
            case (nil, _): return true
            case (_, nil): return false
            case (let left?, let right?):
                if left.file != right.file { return left.file < right.file }
                if left.line != right.line { return left.line < right.line }
                return lhs.offset < rhs.offset
            }
        }.map(\.element)
    }
}

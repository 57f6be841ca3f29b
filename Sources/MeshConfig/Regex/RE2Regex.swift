import CRE2

/// A compiled regular expression with RE2's syntax and semantics, matched against a whole value, as
/// Envoy runs Istio's `regex:` string matches (`google_re2`, full match).
///
/// RE2 matches in time linear in the subject (no backtracking), so a request cannot make a route
/// regex run long, and it rejects what it cannot run that way: backreferences, lookaround,
/// repeat counts over 1000. The compiled program is immutable; any number of event loops match with
/// one instance at once.
public final class RE2Regex: @unchecked Sendable {
    /// Envoy's default `re2.max_program_size.error_level`: a regex whose RE2 program size is larger
    /// fails to compile (Envoy rejects the route with it; so does `meshgate validate`).
    public static let defaultMaxProgramSize = 100

    public let pattern: String
    /// RE2's estimate of the compiled program's size (what the limit above is measured in).
    public let programSize: Int
    private let program: OpaquePointer

    /// Why a pattern did not compile: RE2's own message, or a program over the size limit.
    public struct CompileError: Error, CustomStringConvertible, Sendable, Equatable {
        public var message: String
        public var description: String { self.message }
    }

    public init(_ pattern: String, maxProgramSize: Int = RE2Regex.defaultMaxProgramSize) throws(CompileError) {
        var errorText: UnsafeMutablePointer<CChar>?
        let compiled = pattern.withCString { meshgate_re2_compile($0, pattern.utf8.count, &errorText) }
        guard let compiled else {
            let message = errorText.map { String(cString: $0) } ?? "cannot compile"
            meshgate_re2_free_error(errorText)
            throw CompileError(message: "invalid regex (RE2): \(message)")
        }
        let size = Int(meshgate_re2_program_size(compiled))
        guard size <= maxProgramSize else {
            meshgate_re2_free(compiled)
            throw CompileError(
                message: "regex RE2 program size of \(size) > max program size of \(maxProgramSize) "
                    + "(Envoy's default re2.max_program_size.error_level); simplify the regex"
            )
        }
        self.pattern = pattern
        self.programSize = size
        self.program = compiled
    }

    deinit {
        meshgate_re2_free(self.program)
    }

    /// True when the pattern matches all of `subject`.
    public func matches(_ subject: String) -> Bool {
        var subject = subject
        return subject.withUTF8 { self.matches(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// True when the pattern matches all of the bytes in `subject`.
    public func matches(utf8 subject: UnsafeRawBufferPointer) -> Bool {
        meshgate_re2_full_match(
            self.program,
            subject.baseAddress?.assumingMemoryBound(to: CChar.self),
            subject.count
        ) != 0
    }

    /// Throws RE2's message when `rewrite` names a capture group the pattern does not have.
    public func checkRewrite(_ rewrite: String) throws(CompileError) {
        var errorText: UnsafeMutablePointer<CChar>?
        let ok = rewrite.withCString { meshgate_re2_check_rewrite(self.program, $0, rewrite.utf8.count, &errorText) }
        guard ok == 0 else { return }
        let message = errorText.map { String(cString: $0) } ?? "invalid rewrite"
        meshgate_re2_free_error(errorText)
        throw CompileError(message: "invalid rewrite for regex \(self.pattern): \(message)")
    }

    /// `subject` with every non-overlapping match replaced by `rewrite` (`\\1` names a capture group).
    public func replacingAll(in subject: Substring, with rewrite: String) -> String {
        let original = subject
        var subject = subject
        return subject.withUTF8 { bytes in
            rewrite.withCString { rewriteBytes in
                var length = 0
                guard let result = meshgate_re2_global_replace(
                    self.program, UnsafeRawPointer(bytes.baseAddress)?.assumingMemoryBound(to: CChar.self), bytes.count,
                    rewriteBytes, rewrite.utf8.count, &length
                ) else { return String(original) }
                defer { meshgate_re2_free_error(result) }
                return String(decoding: UnsafeRawBufferPointer(start: result, count: length), as: UTF8.self)
            }
        }
    }
}

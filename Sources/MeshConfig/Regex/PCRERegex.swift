import CPCRE2

/// A compiled regular expression (PCRE2 with JIT) that must match a whole value, as Istio's RE2
/// matches do.
///
/// The compiled code is immutable and shared between event loops; each match uses a match block of
/// its own, so concurrent matches never share mutable state.
public final class PCRERegex: @unchecked Sendable {
    public let pattern: String
    private let code: OpaquePointer
    private let jit: Bool

    /// Why a pattern did not compile, with PCRE2's message and the offset of the problem.
    public struct CompileError: Error, CustomStringConvertible, Sendable {
        public var message: String
        public var offset: Int
        public var description: String { "invalid regex at offset \(self.offset): \(self.message)" }
    }

    public init(_ pattern: String) throws(CompileError) {
        // ANCHORED + ENDANCHORED: the pattern must cover the whole subject (as `\A(?:...)\z` would),
        // and compile errors point into the pattern exactly as the user wrote it.
        var errorCode: Int32 = 0
        var errorOffset: Int = 0
        let compiled = pattern.withCString { cString in
            pcre2_compile_8(
                UnsafeRawPointer(cString).assumingMemoryBound(to: UInt8.self),
                pattern.utf8.count,
                UInt32(PCRE2_UTF) | UInt32(PCRE2_ANCHORED) | UInt32(PCRE2_ENDANCHORED),
                &errorCode,
                &errorOffset,
                nil
            )
        }
        guard let compiled else {
            var buffer = [UInt8](repeating: 0, count: 256)
            let length = pcre2_get_error_message_8(errorCode, &buffer, buffer.count)
            let message = length > 0 ? String(decoding: buffer[0..<Int(length)], as: UTF8.self) : "error \(errorCode)"
            throw CompileError(message: message, offset: errorOffset)
        }
        self.pattern = pattern
        self.code = compiled
        self.jit = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
    }

    deinit {
        pcre2_code_free_8(self.code)
    }

    /// Whether JIT compilation succeeded (it falls back to the interpreter otherwise).
    public var isJIT: Bool { self.jit }

    /// True when the pattern matches all of `subject`.
    public func matches(_ subject: String) -> Bool {
        var subject = subject
        return subject.withUTF8 { self.matches(utf8: UnsafeRawBufferPointer($0)) }
    }

    /// True when the pattern matches all of the UTF-8 bytes in `subject`.
    public func matches(utf8 subject: UnsafeRawBufferPointer) -> Bool {
        guard let matchData = pcre2_match_data_create_from_pattern_8(self.code, nil) else { return false }
        defer { pcre2_match_data_free_8(matchData) }
        let base = subject.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer<UInt8>(bitPattern: 1)!
        let result: Int32
        if self.jit {
            result = pcre2_jit_match_8(self.code, base, subject.count, 0, 0, matchData, nil)
        } else {
            result = pcre2_match_8(self.code, base, subject.count, 0, 0, matchData, nil)
        }
        return result >= 0
    }
}

import Testing

@testable import MeshConfig

@Suite struct PCRERegexTests {
    @Test func matchesTheWholeValueOnly() throws {
        let regex = try PCRERegex("/ratings/[0-9]+")
        #expect(regex.matches("/ratings/42"))
        #expect(!regex.matches("/ratings/42/x"))
        #expect(!regex.matches("x/ratings/42"))
        // Alternation backtracks to an alternative that covers the whole value.
        let alternation = try PCRERegex("a|ab")
        #expect(alternation.matches("ab"))
        let plain = try PCRERegex("abc")
        #expect(!plain.matches("abc\n"), "no trailing-newline leniency, unlike $")
    }

    @Test func compileErrorsPointIntoThePatternAsWritten() {
        #expect(throws: PCRERegex.CompileError.self) { try PCRERegex("/x/[abc") }
        do {
            _ = try PCRERegex("/x/[abc")
        } catch {
            #expect(error.message.contains("missing terminating ]"))
            #expect(error.offset == 7)
        }
    }
}

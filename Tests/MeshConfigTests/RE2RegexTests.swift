import Testing

@testable import MeshConfig

@Suite struct RE2RegexTests {
    @Test func matchesTheWholeValueOnly() throws {
        let regex = try RE2Regex("/ratings/[0-9]+")
        #expect(regex.matches("/ratings/42"))
        #expect(!regex.matches("/ratings/42/x"))
        #expect(!regex.matches("x/ratings/42"))
        // A full match takes an alternative that covers the whole value, not the leftmost-first one.
        let alternation = try RE2Regex("a|ab")
        #expect(alternation.matches("ab"))
        let plain = try RE2Regex("abc")
        #expect(!plain.matches("abc\n"), "no trailing-newline leniency, unlike $")
        #expect(try RE2Regex("").matches(""))
        #expect(!(try RE2Regex("").matches("a")))
        #expect(try RE2Regex(".*").matches(""))
    }

    @Test func replacesEveryMatchWithCaptureGroups() throws {
        let regex = try RE2Regex("^/service/([^/]+)(/.*)$")
        #expect(regex.replacingAll(in: "/service/foo/v1/api", with: "\\2/instance/\\1") == "/v1/api/instance/foo")
        let dashes = try RE2Regex("-")
        #expect(dashes.replacingAll(in: "/a-b-c", with: "_") == "/a_b_c")
        #expect(dashes.replacingAll(in: "/none", with: "_") == "/none")
        #expect(throws: RE2Regex.CompileError.self) { try regex.checkRewrite("\\3") }
        try regex.checkRewrite("\\1-\\2")
    }

    @Test func matchesBytesThatAreNotUTF8WithoutTrapping() throws {
        let regex = try RE2Regex("a.*b")
        let bytes: [UInt8] = [0x61, 0xFF, 0xC3, 0x62]
        _ = bytes.withUnsafeBytes { regex.matches(utf8: $0) }
        #expect(regex.matches("a\u{00E9}b"))
        let empty = [UInt8]()
        #expect(!empty.withUnsafeBytes { regex.matches(utf8: $0) })
    }

    @Test func rejectsWhatRE2CannotRunInLinearTimeWithItsOwnMessage() {
        for (pattern, message) in [
            (#"(a)\1"#, #"invalid regex (RE2): invalid escape sequence: \1"#),
            ("foo(?=bar)", "invalid regex (RE2): invalid perl operator: (?="),
            ("foo(?!bar)", "invalid regex (RE2): invalid perl operator: (?!"),
            ("(?<=a)b", "invalid regex (RE2): invalid perl operator: (?<"),
            ("a{1001}", "invalid regex (RE2): invalid repetition size: {1001}"),
            ("/x/[abc", "invalid regex (RE2): missing ]: [abc"),
        ] {
            #expect(throws: RE2Regex.CompileError(message: message), "\(pattern)") { try RE2Regex(pattern) }
        }
    }

    @Test func rejectsProgramsLargerThanEnvoysDefaultLimit() throws {
        #expect(RE2Regex.defaultMaxProgramSize == 100)
        #expect(try RE2Regex("a{96}").programSize == 100)
        #expect(throws: RE2Regex.CompileError(
            message: "regex RE2 program size of 101 > max program size of 100 "
                + "(Envoy's default re2.max_program_size.error_level); simplify the regex"
        )) { try RE2Regex("a{97}") }
        // a{1000} is valid RE2 syntax, but its program is ten times over the limit.
        #expect(throws: RE2Regex.CompileError.self) { try RE2Regex("a{1000}") }
        #expect(try RE2Regex("a{1000}", maxProgramSize: 2000).matches(String(repeating: "a", count: 1000)))
    }

    @Test func catastrophicBacktrackingPatternReturnsOnALongSubject() throws {
        // With a backtracking engine, (x+x+)+y on a run of x's with no y takes time exponential in
        // the run's length (2^30 paths here). RE2 answers in one linear pass.
        let regex = try RE2Regex("(x+x+)+y")
        let subject = String(repeating: "x", count: 30)
        #expect(!regex.matches(subject))
        #expect(regex.matches(subject + "y"))
        #expect(!regex.matches(String(repeating: "x", count: 100_000)))
    }

    @Test func oneInstanceMatchesFromManyThreadsAtOnce() async throws {
        let regex = try RE2Regex("/api/v[0-9]+/users/[^/]+")
        await withTaskGroup(of: Bool.self) { group in
            for index in 0..<8 {
                group.addTask {
                    (0..<2000).allSatisfy { regex.matches("/api/v\(index)/users/\($0)") && !regex.matches("/api/v\(index)/users/") }
                }
            }
            for await allMatched in group { #expect(allMatched) }
        }
    }
}

import Foundation
import Testing

import MeshConfig
@testable import MeshCore

/// The peer metadata exchange against frames built by hand from the layout in istio/proxy's
/// metadata_exchange filter: `3D 23 04 67`, a big-endian length, then a protobuf Any whose value is
/// a deterministically serialized Struct.
@Suite struct PeerMetadataTests {
    // MARK: - Hand-built protobuf

    private static func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value)
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        return out + [UInt8(value)]
    }

    /// A length-delimited field: its tag byte, the length, the body.
    private static func field(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] { [tag] + varint(body.count) + body }
    private static func field(_ tag: UInt8, _ text: String) -> [UInt8] { field(tag, Array(text.utf8)) }
    /// Struct.fields entry (tag 0x0A) holding key (0x0A) and Value (0x12).
    private static func entry(_ key: String, _ value: [UInt8]) -> [UInt8] { field(0x0A, field(0x0A, key) + field(0x12, value)) }
    /// Value.string_value (0x1A).
    private static func string(_ text: String) -> [UInt8] { field(0x1A, text) }
    /// Value.struct_value (0x2A).
    private static func structure(_ entries: [UInt8]...) -> [UInt8] { field(0x2A, entries.flatMap { $0 }) }

    private static let typeURL = "type.googleapis.com/google.protobuf.Struct"

    // MARK: - Golden frames

    /// The smallest useful frame, every byte written out.
    @Test func goldenMinimalFrame() {
        let metadata = PeerMetadata(id: "i", namespace: "ns")
        let namespaceEntry: [UInt8] = [0x0A, 0x11, 0x0A, 0x09] + Array("NAMESPACE".utf8) + [0x12, 0x04, 0x1A, 0x02, 0x6E, 0x73]
        let node: [UInt8] = namespaceEntry  // 19 bytes
        let metadataEntry: [UInt8] =
            [0x0A, 0x2E, 0x0A, 0x15] + Array("x-envoy-peer-metadata".utf8) + [0x12, 0x15, 0x2A, 0x13] + node
        let idEntry: [UInt8] = [0x0A, 0x1F, 0x0A, 0x18] + Array("x-envoy-peer-metadata-id".utf8) + [0x12, 0x03, 0x1A, 0x01, 0x69]
        let any: [UInt8] = [0x0A, 0x2A] + Array(Self.typeURL.utf8) + [0x12, 0x51] + metadataEntry + idEntry
        let expected: [UInt8] = [0x3D, 0x23, 0x04, 0x67, 0x00, 0x00, 0x00, 0x7F] + any
        #expect(any.count == 0x7F)
        #expect(PeerMetadataExchange.encodeFrame(metadata) == expected)
        #expect(PeerMetadataExchange.decodeFrame(expected) == .frame(metadata, consumed: 135))
    }

    private static let reviews = PeerMetadata(
        id: "sidecar~127.0.1.2~reviews-v2-1.bookinfo~bookinfo.svc.cluster.local",
        name: "reviews-v2-1",
        namespace: "bookinfo",
        workloadName: "reviews-v2",
        labels: ["app": "reviews", "version": "v2", "service.istio.io/canonical-name": "reviews"],
        clusterID: "Kubernetes",
        meshID: "cluster.local",
        serviceAccount: "bookinfo-reviews",
        otherFields: [
            "INTERCEPTION_MODE": .null,
            "PLATFORM_METADATA": .structure(["weight": .number(1.5), "ready": .bool(true), "zones": .list([.string("a"), .bool(false)])]),
        ]
    )

    /// The node metadata Struct of ``reviews``, keys in byte order, every Value kind present.
    private static var reviewsNode: [UInt8] {
        let labels = structure(
            entry("app", string("reviews")),
            entry("service.istio.io/canonical-name", string("reviews")),
            entry("version", string("v2"))
        )
        let platform = structure(
            entry("ready", [0x20, 0x01]),
            entry("weight", [0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x3F]),  // 1.5, little-endian IEEE 754
            entry("zones", field(0x32, field(0x0A, string("a")) + field(0x0A, [0x20, 0x00])))
        )
        return entry("CLUSTER_ID", string("Kubernetes"))
            + entry("INTERCEPTION_MODE", [0x08, 0x00])
            + entry("LABELS", labels)
            + entry("MESH_ID", string("cluster.local"))
            + entry("NAME", string("reviews-v2-1"))
            + entry("NAMESPACE", string("bookinfo"))
            + entry("PLATFORM_METADATA", platform)
            + entry("SERVICE_ACCOUNT", string("bookinfo-reviews"))
            + entry("WORKLOAD_NAME", string("reviews-v2"))
    }

    @Test func goldenIstioLikeFrame() {
        let payload =
            Self.entry("x-envoy-peer-metadata", Self.field(0x2A, Self.reviewsNode))
            + Self.entry("x-envoy-peer-metadata-id", Self.string(Self.reviews.id))
        let any = Self.field(0x0A, Self.typeURL) + Self.field(0x12, payload)
        let length = UInt32(any.count)
        let expected: [UInt8] =
            [0x3D, 0x23, 0x04, 0x67]
            + [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + any
        #expect(PeerMetadataExchange.encodeFrame(Self.reviews) == expected)
        #expect(PeerMetadataExchange.decodeFrame(expected) == .frame(Self.reviews, consumed: expected.count))
    }

    @Test func goldenHTTPHeaders() throws {
        let (metadata, id) = PeerMetadataExchange.headerValues(Self.reviews)
        #expect(metadata == Data(Self.reviewsNode).base64EncodedString())
        #expect(id == Self.reviews.id)
        #expect(try PeerMetadataExchange.decodeHeaders(metadata: metadata, id: id) == Self.reviews)
        // Unpadded base64 is read too; the id may be missing.
        var unpadded = metadata
        while unpadded.hasSuffix("=") { unpadded.removeLast() }
        #expect(try PeerMetadataExchange.decodeHeaders(metadata: unpadded, id: nil).workloadName == "reviews-v2")
    }

    /// The same metadata serialized by the protobuf library itself (Python `google.protobuf` 7.36,
    /// `SerializeToString(deterministic=True)`). Its upb runtime sorts map keys differently from
    /// C++ protobuf (it puts `NAMESPACE` before `NAME` and `x-envoy-peer-metadata-id` before
    /// `x-envoy-peer-metadata`), so these bytes are not ours; the decoder reads any order.
    @Test func decodesWhatTheProtobufLibraryWrites() throws {
        let frame = Self.bytes(hex: [
        "3d230467000002290a2a747970652e676f6f676c65617069732e636f6d2f676f6f676c652e70726f746f6275662e53747275637412fa030a",
        "600a18782d656e766f792d706565722d6d657461646174612d696412441a42736964656361727e3132372e302e312e327e72657669657773",
        "2d76322d312e626f6f6b696e666f7e626f6f6b696e666f2e7376632e636c75737465722e6c6f63616c0a95030a15782d656e766f792d7065",
        "65722d6d6574616461746112fb022af8020a1a0a0a434c55535445525f4944120c1a0a4b756265726e657465730a170a11494e5445524345",
        "5054494f4e5f4d4f4445120208000a5d0a064c4142454c5312532a510a100a0361707012091a07726576696577730a2c0a1f736572766963",
        "652e697374696f2e696f2f63616e6f6e6963616c2d6e616d6512091a07726576696577730a0f0a0776657273696f6e12041a0276320a1a0a",
        "074d4553485f4944120f1a0d636c75737465722e6c6f63616c0a170a094e414d455350414345120a1a08626f6f6b696e666f0a160a044e41",
        "4d45120e1a0c726576696577732d76322d310a4f0a11504c4154464f524d5f4d45544144415441123a2a380a0b0a05726561647912022001",
        "0a130a06776569676874120911000000000000f83f0a140a057a6f6e6573120b32090a031a01610a0220000a250a0f534552564943455f41",
        "43434f554e5412121a10626f6f6b696e666f2d726576696577730a1d0a0d574f524b4c4f41445f4e414d45120c1a0a726576696577732d76",
        "32",
        ])
        #expect(PeerMetadataExchange.decodeFrame(frame) == .frame(Self.reviews, consumed: frame.count))
        let header = "ChoKCkNMVVNURVJfSUQSDBoKS3ViZXJuZXRlcwoXChFJTlRFUkNFUFRJT05fTU9ERRICCAAKXQoGTEFCRUxTElMqUQoQCgNhcHASCRoHcmV2aWV3cwosCh9zZXJ2aWNlLmlzdGlvLmlvL2Nhbm9uaWNhbC1uYW1lEgkaB3Jldmlld3MKDwoHdmVyc2lvbhIEGgJ2MgoaCgdNRVNIX0lEEg8aDWNsdXN0ZXIubG9jYWwKFwoJTkFNRVNQQUNFEgoaCGJvb2tpbmZvChYKBE5BTUUSDhoMcmV2aWV3cy12Mi0xCk8KEVBMQVRGT1JNX01FVEFEQVRBEjoqOAoLCgVyZWFkeRICIAEKEwoGd2VpZ2h0EgkRAAAAAAAA+D8KFAoFem9uZXMSCzIJCgMaAWEKAiAACiUKD1NFUlZJQ0VfQUNDT1VOVBISGhBib29raW5mby1yZXZpZXdzCh0KDVdPUktMT0FEX05BTUUSDBoKcmV2aWV3cy12Mg=="
        #expect(try PeerMetadataExchange.decodeHeaders(metadata: header, id: Self.reviews.id) == Self.reviews)
    }

    private static func bytes(hex lines: [String]) -> [UInt8] {
        let digits = Array(lines.joined().utf8)
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }

    // MARK: - Model

    @Test func derivedLabelsFollowIstioStats() {
        var peer = PeerMetadata(workloadName: "ratings-v1")
        #expect(peer.canonicalName == "ratings-v1")
        #expect(peer.canonicalRevision == "latest")
        peer.labels = ["app.kubernetes.io/name": "ratings", "app.kubernetes.io/version": "1.0"]
        #expect(peer.app == "ratings")
        #expect(peer.version == "1.0")
        #expect(peer.canonicalName == "ratings")
        peer.labels = ["app": "ratings", "version": "v1", "service.istio.io/canonical-revision": "r7"]
        #expect(peer.canonicalName == "ratings")
        #expect(peer.canonicalRevision == "r7")
        #expect(Self.reviews.principal() == "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews")
        #expect(PeerMetadata(namespace: "x").principal() == nil)
    }

    @Test func structConversionKeepsUnknownAndMistypedKeys() {
        let node: ProtobufStruct = [
            "NAME": .number(3), "NAMESPACE": .string("default"), "LABELS": .structure(["app": .bool(true)]),
            "APP_CONTAINERS": .string("reviews,istio-proxy"),
        ]
        let peer = PeerMetadata(nodeMetadata: node)
        #expect(peer.namespace == "default")
        #expect(peer.name == "")
        #expect(peer.labels.isEmpty)
        #expect(peer.otherFields == ["NAME": .number(3), "LABELS": .structure(["app": .bool(true)]), "APP_CONTAINERS": .string("reviews,istio-proxy")])
        #expect(peer.nodeMetadata == node)
    }

    // MARK: - Round trips and streams

    @Test func roundTripsAndLeavesTheApplicationBytes() {
        let frame = PeerMetadataExchange.encodeFrame(Self.reviews)
        let stream = frame + Array("GET / HTTP/1.1\r\n".utf8)
        #expect(PeerMetadataExchange.decodeFrame(stream) == .frame(Self.reviews, consumed: frame.count))
        #expect(PeerMetadataExchange.decodeFrame(stream[...]) == .frame(Self.reviews, consumed: frame.count))
        let empty = PeerMetadata()
        #expect(PeerMetadataExchange.decodeFrame(PeerMetadataExchange.encodeFrame(empty)) == .frame(empty, consumed: 8 + 44 + 2 + 61))
    }

    @Test func structRoundTripsEveryValueKind() throws {
        let value: ProtobufStruct = [
            "": .string(""), "n": .number(-0.0), "big": .number(1e300), "t": .bool(true), "f": .bool(false), "z": .null,
            "s": .structure([:]), "l": .list([]), "nested": .list([.list([.structure(["k": .string("日本")])])]),
        ]
        #expect(try ProtobufStruct(serializedBytes: value.serializedBytes()) == value)
    }

    /// Found by FuzzPeerMetadata (its own oracle compared values, and NaN is never equal to itself): a
    /// NaN number, whatever its payload, is carried bit for bit; round trips compare bytes.
    @Test func nanNumbersRoundTripBitForBit() throws {
        let payload = Double(bitPattern: 0x7FF0_00FE_0000_0000)
        let value: ProtobufStruct = ["nan": .number(.nan), "payload": .number(payload), "list": .list([.number(-.nan)])]
        let bytes = value.serializedBytes()
        #expect(try ProtobufStruct(serializedBytes: bytes).serializedBytes() == bytes)
        guard case .number(let decoded)? = try ProtobufStruct(serializedBytes: bytes)["payload"] else {
            Issue.record("no number")
            return
        }
        #expect(decoded.bitPattern == payload.bitPattern)
    }

    @Test func everyTruncationNeedsMoreData() {
        let frame = PeerMetadataExchange.encodeFrame(Self.reviews)
        for length in 0..<frame.count {
            #expect(PeerMetadataExchange.decodeFrame(frame.prefix(length)) == .needMoreData, "prefix of \(length) bytes")
        }
    }

    @Test func wrongMagicIsToldFromTheFirstByte() {
        #expect(PeerMetadataExchange.decodeFrame(Array("GET / HTTP/1.1\r\n".utf8)) == .wrongMagic)
        #expect(PeerMetadataExchange.decodeFrame([0x16]) == .wrongMagic)  // a TLS record
        #expect(PeerMetadataExchange.decodeFrame([0x3D, 0x23, 0x04]) == .needMoreData)
        #expect(PeerMetadataExchange.decodeFrame([0x3D, 0x23, 0x04, 0x68, 0, 0, 0, 0]) == .wrongMagic)
        var frame = PeerMetadataExchange.encodeFrame(Self.reviews)
        frame[0] = 0x67
        #expect(PeerMetadataExchange.decodeFrame(frame) == .wrongMagic)
    }

    @Test func refusesOversizedAndMalformedPayloads() {
        // Over 64 KiB: refused from the header alone, without waiting for the payload.
        #expect(PeerMetadataExchange.decodeFrame([0x3D, 0x23, 0x04, 0x67, 0x00, 0x01, 0x00, 0x01]) == .malformed("payload of 65537 bytes is over 65536"))
        #expect(PeerMetadataExchange.decodeFrame([0x3D, 0x23, 0x04, 0x67, 0xFF, 0xFF, 0xFF, 0xFF]) != .needMoreData)
        func frame(_ any: [UInt8]) -> [UInt8] { [0x3D, 0x23, 0x04, 0x67, 0, 0, UInt8(any.count >> 8), UInt8(any.count & 0xFF)] + any }
        func isMalformed(_ any: [UInt8], _ reason: String) -> Bool {
            guard case .malformed(let text) = PeerMetadataExchange.decodeFrame(frame(any)) else { return false }
            return text.contains(reason)
        }
        #expect(isMalformed([], "Any of type ''"))
        #expect(isMalformed(Self.field(0x0A, "type.googleapis.com/google.protobuf.Value"), "Any of type 'type.googleapis.com/google.protobuf.Value'"))
        #expect(isMalformed(Self.field(0x0A, Self.typeURL), "no x-envoy-peer-metadata Struct"))
        let idOnly = Self.field(0x0A, Self.typeURL) + Self.field(0x12, Self.entry("x-envoy-peer-metadata-id", Self.string("x")))
        #expect(isMalformed(idOnly, "no x-envoy-peer-metadata Struct"))
        let stringNotStruct = Self.field(0x0A, Self.typeURL) + Self.field(0x12, Self.entry("x-envoy-peer-metadata", Self.string("x")))
        #expect(isMalformed(stringNotStruct, "no x-envoy-peer-metadata Struct"))
        #expect(isMalformed([0x0A, 0x05, 0x61], "past the end"))
        #expect(isMalformed([0x0A, 0x02, 0xC3, 0x28], "not UTF-8"))
        #expect(isMalformed([0x0B], "wire type 3"))
        #expect(isMalformed([0x00], "field number 0"))
        #expect(isMalformed([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], "varint longer"))
        #expect(isMalformed(Self.field(0x0A, Self.typeURL) + Self.field(0x12, Self.entry("k", [0x11, 0x00])), "truncated fixed64"))
        #expect(isMalformed(Self.field(0x0A, Self.typeURL) + Self.field(0x12, Self.entry("k", [0x10, 0x00])), "Value.number_value with wire type 0"))
    }

    @Test func deepNestingIsRefusedNotOverflowed() {
        var value: [UInt8] = Self.string("leaf")
        for _ in 0..<40 { value = Self.structure(Self.entry("k", value)) }
        let any = Self.field(0x0A, Self.typeURL) + Self.field(0x12, Self.entry("x-envoy-peer-metadata", value))
        let frame: [UInt8] = [0x3D, 0x23, 0x04, 0x67, 0, 0, UInt8(any.count >> 8), UInt8(any.count & 0xFF)] + any
        guard case .malformed(let reason) = PeerMetadataExchange.decodeFrame(frame) else {
            Issue.record("40 nested structs were accepted")
            return
        }
        #expect(reason.contains("nested deeper than 32"))
        // Lists nest too: 2000 levels fit in a few KiB and are refused at level 33, never recursed into.
        var deep: [UInt8] = [0x32, 0x00]
        for _ in 0..<2000 { deep = Self.field(0x32, Self.field(0x0A, deep)) }
        #expect(throws: MalformedPeerMetadata("ListValue.values nested deeper than 32")) {
            try ProtobufStruct(serializedBytes: Self.entry("k", deep))
        }
    }

    @Test func headerRefusals() {
        #expect(throws: MalformedPeerMetadata("x-envoy-peer-metadata is not base64")) {
            try PeerMetadataExchange.decodeHeaders(metadata: "not base64!", id: nil)
        }
        #expect(throws: MalformedPeerMetadata.self) { try PeerMetadataExchange.decodeHeaders(metadata: "CgE", id: nil) }  // truncated entry
        #expect(throws: MalformedPeerMetadata.self) {
            try PeerMetadataExchange.decodeHeaders(metadata: String(repeating: "A", count: 90_000), id: nil)
        }
        #expect(throws: MalformedPeerMetadata.self) { try PeerMetadataExchange.decodeHeaders(metadata: "A", id: nil) }
        #expect(throws: MalformedPeerMetadata.self) { try PeerMetadataExchange.decodeHeaders(metadata: "AB==", id: nil) }  // non-zero pad bits
    }

    @Test func base64MatchesFoundation() {
        var generator = SplitMix64(seed: 7)
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let encoded = Base64.encode(bytes)
            #expect(encoded == Data(bytes).base64EncodedString())
            #expect(Base64.decode(encoded) == bytes)
        }
    }

    // MARK: - Robustness

    /// Random bytes, random headers with the right magic, and mutated real frames: the decoder
    /// always answers and never claims more bytes than it was given.
    @Test func randomInputNeverCrashes() {
        var generator = SplitMix64(seed: 0x5EED_0467)
        let valid = PeerMetadataExchange.encodeFrame(Self.reviews)
        var verdicts: [String: Int] = [:]
        for iteration in 0..<20_000 {
            var input: [UInt8]
            switch iteration % 4 {
            case 0:
                input = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            case 1:
                let body = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                let length = UInt32.random(in: 0...UInt32(body.count + 4), using: &generator)
                input = [0x3D, 0x23, 0x04, 0x67, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + body
            default:
                input = valid
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let index = Int.random(in: 8..<input.count, using: &generator)
                    input[index] = UInt8.random(in: 0...255, using: &generator)
                }
                if iteration % 4 == 3 { input = Array(input.prefix(Int.random(in: 0...input.count, using: &generator))) }
            }
            let verdict = PeerMetadataExchange.decodeFrame(input)
            switch verdict {
            case .frame(_, let consumed):
                #expect(consumed <= input.count)
                verdicts["frame", default: 0] += 1
            case .needMoreData: verdicts["needMoreData", default: 0] += 1
            case .wrongMagic: verdicts["wrongMagic", default: 0] += 1
            case .malformed: verdicts["malformed", default: 0] += 1
            }
            _ = try? ProtobufStruct(serializedBytes: input)
            _ = try? PeerMetadataExchange.decodeHeaders(metadata: Base64.encode(input), id: nil)
        }
        // The mix reached every verdict, so the mutations exercised the payload parser.
        #expect(verdicts.keys.sorted() == ["frame", "malformed", "needMoreData", "wrongMagic"])
    }
}

/// A seeded generator (MeshCore's SplitMix64), so a failing input can be replayed.
private struct SplitMix64: RandomNumberGenerator {
    let source: FastRandom

    init(seed: UInt64) {
        self.source = FastRandom(seed: seed)
    }

    mutating func next() -> UInt64 { self.source.next() }
}

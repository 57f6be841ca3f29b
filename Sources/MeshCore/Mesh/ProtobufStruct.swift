/// `google.protobuf.Struct` and `google.protobuf.Value`, the JSON-like messages Istio's peer
/// metadata travels in, with just enough of the protobuf wire format to write and read them.
///
/// Writing is deterministic as C++ protobuf's `SetSerializationDeterministic` makes it (Envoy is
/// C++): map entries sorted by key as `std::string` compares (bytes of the UTF-8, a prefix before
/// its extensions: `NAME` before `NAMESPACE`), each entry with both its key and its value, every set
/// `oneof` case written even when it holds a default (`false`, `0`, `""`, `null`). Reading is
/// bounded and total: unknown fields are skipped, nesting deeper than ``maximumDepth`` and every
/// truncation or bad wire type is a ``MalformedPeerMetadata``, never a crash.
public struct ProtobufStruct: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// How deep structs and lists may nest when read (Istio's node metadata uses three levels).
    public static let maximumDepth = 32

    public var fields: [String: ProtobufValue]

    public init(_ fields: [String: ProtobufValue] = [:]) {
        self.fields = fields
    }

    public init(dictionaryLiteral elements: (String, ProtobufValue)...) {
        self.fields = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    public subscript(key: String) -> ProtobufValue? {
        get { self.fields[key] }
        set { self.fields[key] = newValue }
    }

    /// The deterministic wire form of this Struct.
    public func serializedBytes() -> [UInt8] {
        var writer = ProtobufWriter()
        writer.writeStruct(self)
        return writer.bytes
    }

    /// Reads the wire form of a Struct.
    public init(serializedBytes bytes: some Collection<UInt8>) throws(MalformedPeerMetadata) {
        var reader = ProtobufReader(Array(bytes))
        self = try reader.readStruct(depth: 0)
    }
}

/// `google.protobuf.Value`: one of null, a number (a double), a string, a bool, a Struct or a list.
public indirect enum ProtobufValue: Sendable, Hashable {
    case null
    case number(Double)
    case string(String)
    case bool(Bool)
    case structure(ProtobufStruct)
    case list([ProtobufValue])

    /// The string, when this is one.
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The Struct, when this is one.
    public var structValue: ProtobufStruct? {
        if case .structure(let value) = self { return value }
        return nil
    }
}

/// A peer metadata payload (protobuf, base64 or frame) that cannot be read; `reason` says where.
public struct MalformedPeerMetadata: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { self.reason }
}

// MARK: - Wire format

/// Protobuf wire types (https://protobuf.dev/programming-guides/encoding/).
enum ProtobufWireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case startGroup = 3
    case endGroup = 4
    case fixed32 = 5
}

/// Appends protobuf fields to a byte array.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func writeVarint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        self.bytes.append(UInt8(value))
    }

    mutating func writeTag(_ field: Int, _ wireType: ProtobufWireType) {
        self.writeVarint(UInt64(field) << 3 | UInt64(wireType.rawValue))
    }

    mutating func writeBytes(_ field: Int, _ body: some Collection<UInt8>) {
        self.writeTag(field, .lengthDelimited)
        self.writeVarint(UInt64(body.count))
        self.bytes.append(contentsOf: body)
    }

    mutating func writeString(_ field: Int, _ text: String) {
        self.writeBytes(field, text.utf8)
    }

    /// A length-delimited sub-message whose body `build` writes.
    mutating func writeMessage(_ field: Int, _ build: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        build(&inner)
        self.writeBytes(field, inner.bytes)
    }

    /// Struct { map<string, Value> fields = 1; }: one FieldsEntry { key = 1; value = 2; } per key.
    mutating func writeStruct(_ value: ProtobufStruct) {
        let keys = value.fields.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for key in keys {
            self.writeMessage(1) { entry in
                entry.writeString(1, key)
                entry.writeMessage(2) { $0.writeValue(value.fields[key]!) }
            }
        }
    }

    /// Value { oneof kind { NullValue null_value = 1; double number_value = 2; string string_value = 3;
    /// bool bool_value = 4; Struct struct_value = 5; ListValue list_value = 6; } }
    mutating func writeValue(_ value: ProtobufValue) {
        switch value {
        case .null:
            self.writeTag(1, .varint)
            self.writeVarint(0)
        case .number(let number):
            self.writeTag(2, .fixed64)
            let bits = number.bitPattern
            for shift in stride(from: 0, to: 64, by: 8) { self.bytes.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        case .string(let text):
            self.writeString(3, text)
        case .bool(let flag):
            self.writeTag(4, .varint)
            self.writeVarint(flag ? 1 : 0)
        case .structure(let inner):
            self.writeMessage(5) { $0.writeStruct(inner) }
        case .list(let values):
            // ListValue { repeated Value values = 1; }
            self.writeMessage(6) { list in
                for element in values { list.writeMessage(1) { $0.writeValue(element) } }
            }
        }
    }
}

/// Reads protobuf fields from a byte array, refusing anything truncated or out of bounds.
struct ProtobufReader {
    private let bytes: [UInt8]
    private var index: Int
    private let end: Int

    init(_ bytes: [UInt8]) {
        self.init(bytes, range: 0..<bytes.count)
    }

    private init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.index = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { self.index >= self.end }

    /// What is left to read.
    var remainingBytes: ArraySlice<UInt8> { self.bytes[self.index..<self.end] }

    mutating func readVarint() throws(MalformedPeerMetadata) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard self.index < self.end else { throw MalformedPeerMetadata("truncated varint") }
            let byte = self.bytes[self.index]
            self.index += 1
            if shift == 63, byte > 1 { throw MalformedPeerMetadata("varint longer than 64 bits") }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw MalformedPeerMetadata("varint longer than 10 bytes")
    }

    /// The next field's number and wire type, or nil at the end.
    mutating func readTag() throws(MalformedPeerMetadata) -> (field: Int, wireType: ProtobufWireType)? {
        guard !self.isAtEnd else { return nil }
        let tag = try self.readVarint()
        let field = tag >> 3
        guard field >= 1, field <= 536_870_911 else { throw MalformedPeerMetadata("field number \(field)") }
        guard let wireType = ProtobufWireType(rawValue: UInt8(tag & 7)) else {
            throw MalformedPeerMetadata("wire type \(tag & 7) of field \(field)")
        }
        return (Int(field), wireType)
    }

    /// A length-delimited field's body, as a reader limited to it.
    mutating func readLengthDelimited() throws(MalformedPeerMetadata) -> ProtobufReader {
        let length = try self.readVarint()
        guard length <= UInt64(self.end - self.index) else {
            throw MalformedPeerMetadata("length \(length) past the end (\(self.end - self.index) bytes left)")
        }
        let start = self.index
        self.index += Int(length)
        return ProtobufReader(self.bytes, range: start..<self.index)
    }

    /// All that is left of this reader, as UTF-8 text (a string field's body).
    func readString() throws(MalformedPeerMetadata) -> String {
        guard let text = String(validating: self.remainingBytes, as: UTF8.self) else {
            throw MalformedPeerMetadata("string that is not UTF-8")
        }
        return text
    }

    mutating func readFixed64() throws(MalformedPeerMetadata) -> UInt64 {
        guard self.end - self.index >= 8 else { throw MalformedPeerMetadata("truncated fixed64") }
        var value: UInt64 = 0
        for offset in 0..<8 { value |= UInt64(self.bytes[self.index + offset]) << UInt64(8 * offset) }
        self.index += 8
        return value
    }

    /// Skips the body of a field this reader does not know.
    mutating func skip(_ wireType: ProtobufWireType) throws(MalformedPeerMetadata) {
        switch wireType {
        case .varint: _ = try self.readVarint()
        case .fixed64: _ = try self.readFixed64()
        case .lengthDelimited: _ = try self.readLengthDelimited()
        case .fixed32:
            guard self.end - self.index >= 4 else { throw MalformedPeerMetadata("truncated fixed32") }
            self.index += 4
        case .startGroup, .endGroup: throw MalformedPeerMetadata("groups are not used by Struct")
        }
    }

    /// A field of a known number must have the wire type its declaration gives.
    private func expect(_ wireType: ProtobufWireType, _ actual: ProtobufWireType, _ what: String) throws(MalformedPeerMetadata) {
        guard wireType == actual else { throw MalformedPeerMetadata("\(what) with wire type \(actual.rawValue)") }
    }

    /// The body of a length-delimited field declared as a message or string.
    private mutating func readMessage(_ wireType: ProtobufWireType, _ what: String) throws(MalformedPeerMetadata) -> ProtobufReader {
        try self.expect(.lengthDelimited, wireType, what)
        return try self.readLengthDelimited()
    }

    /// Calls `body` with each message of the repeated field 1 (`Struct.fields`, `ListValue.values`),
    /// skipping other fields; refuses nesting deeper than ``ProtobufStruct/maximumDepth``.
    private mutating func forEachMessageOfField1(
        _ what: String, depth: Int, _ body: (inout ProtobufReader) throws(MalformedPeerMetadata) -> Void
    ) throws(MalformedPeerMetadata) {
        guard depth <= ProtobufStruct.maximumDepth else {
            throw MalformedPeerMetadata("\(what) nested deeper than \(ProtobufStruct.maximumDepth)")
        }
        while let (field, wireType) = try self.readTag() {
            guard field == 1 else {
                try self.skip(wireType)
                continue
            }
            var message = try self.readMessage(wireType, what)
            try body(&message)
        }
    }

    /// Struct { map<string, Value> fields = 1; }, each entry a FieldsEntry { key = 1; value = 2; }.
    mutating func readStruct(depth: Int) throws(MalformedPeerMetadata) -> ProtobufStruct {
        var result = ProtobufStruct()
        try self.forEachMessageOfField1("Struct.fields", depth: depth) { entry throws(MalformedPeerMetadata) in
            var key = ""
            var value = ProtobufValue.null
            while let (field, wireType) = try entry.readTag() {
                switch field {
                case 1:
                    key = try entry.readMessage(wireType, "Struct.fields key").readString()
                case 2:
                    var body = try entry.readMessage(wireType, "Struct.fields value")
                    value = try body.readValue(depth: depth)
                default:
                    try entry.skip(wireType)
                }
            }
            result.fields[key] = value
        }
        return result
    }

    /// A Value message (this reader is limited to its body). No kind set reads as null.
    mutating func readValue(depth: Int) throws(MalformedPeerMetadata) -> ProtobufValue {
        var value = ProtobufValue.null
        while let (field, wireType) = try self.readTag() {
            switch field {
            case 1:
                try self.expect(.varint, wireType, "Value.null_value")
                _ = try self.readVarint()
                value = .null
            case 2:
                try self.expect(.fixed64, wireType, "Value.number_value")
                value = .number(Double(bitPattern: try self.readFixed64()))
            case 3:
                value = .string(try self.readMessage(wireType, "Value.string_value").readString())
            case 4:
                try self.expect(.varint, wireType, "Value.bool_value")
                value = .bool(try self.readVarint() != 0)
            case 5:
                var body = try self.readMessage(wireType, "Value.struct_value")
                value = .structure(try body.readStruct(depth: depth + 1))
            case 6:
                // ListValue { repeated Value values = 1; }
                var body = try self.readMessage(wireType, "Value.list_value")
                var values: [ProtobufValue] = []
                try body.forEachMessageOfField1("ListValue.values", depth: depth + 1) { element throws(MalformedPeerMetadata) in
                    values.append(try element.readValue(depth: depth + 1))
                }
                value = .list(values)
            default:
                try self.skip(wireType)
            }
        }
        return value
    }
}

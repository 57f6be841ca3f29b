import SwiftASN1
import X509

/// PEM in and out for the CA's files, with errors that name the file.
enum PEMFiles {
    /// Every certificate in the PEM file at `path` (at least one), in file order.
    static func certificates(at path: String, what: String) throws(MeshCAError) -> [Certificate] {
        let text = try PrivateFiles.read(path, what: what)
        do {
            let certificates = try PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
            guard !certificates.isEmpty else { throw MeshCAError(.malformedFile, "no certificate") }
            return certificates
        } catch {
            throw MeshCAError(.malformedFile, "\(path): not a PEM certificate (the \(what)): \(error)")
        }
    }

    static func privateKey(at path: String, what: String) throws(MeshCAError) -> Certificate.PrivateKey {
        let text = try PrivateFiles.read(path, what: what)
        do {
            return try Certificate.PrivateKey(pemEncoded: text)
        } catch {
            throw MeshCAError(.malformedFile, "\(path): not a PEM private key (the \(what)): \(error)")
        }
    }

    /// One PEM block with its trailing newline.
    static func text(_ value: some PEMSerializable) throws -> String {
        try value.serializeAsPEM().pemString + "\n"
    }

    static func text(_ key: Certificate.PrivateKey) throws -> String {
        try key.serializeAsPEM().pemString + "\n"
    }

    /// Runs serialization, turning its errors into ``MeshCAError``.
    static func text<T>(_ body: () throws -> T) throws(MeshCAError) -> T {
        do { return try body() } catch { throw MeshCAError(.io, "cannot serialize PEM: \(error)") }
    }
}

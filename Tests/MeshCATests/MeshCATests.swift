import Foundation
import SwiftASN1
import Testing
@_spi(FixedExpiryValidationTime) import X509

@testable import MeshCA

@Suite struct MeshCATests {
    /// A fixed, whole-second time: certificates keep seconds only.
    private let now = Date(timeIntervalSince1970: 1_750_000_000)

    private func temporaryDirectory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("meshca-\(UUID().uuidString)").path
        return path
    }

    private func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? nil
    }

    // MARK: - Root

    @Test func rootIsASelfSignedP256CAForTenYears() throws {
        let ca = try MeshCA.create(trustDomain: "cluster.local", now: self.now)
        let root = ca.rootCertificate
        #expect(root.subject == root.issuer)
        #expect(root.subject.description == "O=cluster.local")
        #expect(root.signatureAlgorithm == .ecdsaWithSHA256)
        #expect(root.notValidBefore == self.now.addingTimeInterval(-60))
        #expect(root.notValidAfter == self.now.addingTimeInterval(-60 + 10 * 365 * 24 * 3600))
        let constraints = try #require(root.extensions.first { $0.oid == .X509ExtensionID.basicConstraints })
        #expect(constraints.critical)
        #expect(try root.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: nil))
        let usage = try #require(root.extensions.first { $0.oid == .X509ExtensionID.keyUsage })
        #expect(usage.critical)
        #expect(try root.extensions.keyUsage == KeyUsage(keyCertSign: true, cRLSign: true))
        #expect(try root.extensions.subjectKeyIdentifier != nil)
        #expect(root.publicKey.isValidSignature(root.signature, for: root))
    }

    @Test func initWritesPrivateFilesAndLoadReadsThemBack() throws {
        let directory = self.temporaryDirectory() + "/nested/ca"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let created = try MeshCA.initialize(directory: directory, trustDomain: "mesh.example", now: self.now)
        #expect(self.mode(directory) == 0o700)
        #expect(self.mode(directory + "/root-key.pem") == 0o600)
        #expect(self.mode(directory + "/root-cert.pem") == 0o644)
        let key = try String(contentsOfFile: directory + "/root-key.pem", encoding: .utf8)
        #expect(key.hasPrefix("-----BEGIN PRIVATE KEY-----\n") && key.hasSuffix("-----END PRIVATE KEY-----\n"))

        let loaded = try MeshCA.load(directory: directory)
        #expect(loaded.trustDomain == "mesh.example")
        #expect(loaded.rootCertificate == created.rootCertificate)

        #expect {
            try MeshCA.initialize(directory: directory, now: self.now)
        } throws: { ($0 as! MeshCAError).code == .alreadyExists }
    }

    @Test func loadRefusesAKeyOthersCanRead() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try MeshCA.initialize(directory: directory, now: self.now)
        for mode in [0o644, 0o640, 0o604, 0o620] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: directory + "/root-key.pem")
            #expect {
                try MeshCA.load(directory: directory)
            } throws: { error in
                let error = error as! MeshCAError
                return error.code == .insecureKeyFile && error.message.contains("\(directory)/root-key.pem has mode 0\(String(mode, radix: 8))")
            }
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: directory + "/root-key.pem")
        #expect(throws: Never.self) { try MeshCA.load(directory: directory) }
    }

    @Test func loadRefusesMissingAndMismatchedFiles() throws {
        let directory = self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect { try MeshCA.load(directory: directory) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .missingFile && error.message.contains("root-key.pem")
        }
        let first = try MeshCA.create(now: self.now)
        try first.write(to: directory)
        // Another root's certificate beside this key.
        try PrivateFiles.write(
            try PEMFiles.text(try MeshCA.create(now: self.now).rootCertificate), to: directory + "/root-cert.pem", mode: 0o644)
        #expect { try MeshCA.load(directory: directory) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .malformedFile && error.message.contains("is not the key of")
        }
        try PrivateFiles.write("not a certificate\n", to: directory + "/root-cert.pem", mode: 0o644)
        #expect { try MeshCA.load(directory: directory) } throws: { ($0 as! MeshCAError).code == .malformedFile }
    }

    @Test func rejectsABadTrustDomain() {
        #expect { try MeshCA.create(trustDomain: "Cluster_Local", now: self.now) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .invalidIdentity && error.message.hasPrefix("trust domain 'Cluster_Local'")
        }
    }

    // MARK: - Workload certificates

    @Test func workloadCertificateIsAnX509SVID() async throws {
        let ca = try MeshCA.create(now: self.now)
        let issued = try ca.issue(namespace: "default", serviceAccount: "reviews", now: self.now)
        let leaf = issued.certificate
        #expect(issued.identity.uri == "spiffe://cluster.local/ns/default/sa/reviews")
        #expect(leaf.subject.isEmpty)
        #expect(leaf.issuer == ca.rootCertificate.subject)
        #expect(leaf.notValidBefore == self.now.addingTimeInterval(-60))
        #expect(leaf.notValidAfter == self.now.addingTimeInterval(-60 + 24 * 3600))
        #expect(issued.renewalTime() == self.now.addingTimeInterval(-60 + 12 * 3600))

        let names = try #require(try leaf.extensions.subjectAlternativeNames)
        #expect(Array(names) == [.uniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/reviews")])
        #expect(try SPIFFEID(certificate: leaf) == issued.identity)
        func critical(_ oid: ASN1ObjectIdentifier) -> Bool? { leaf.extensions.first { $0.oid == oid }?.critical }
        #expect(critical(.X509ExtensionID.subjectAlternativeName) == true)
        #expect(critical(.X509ExtensionID.basicConstraints) == true)
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(critical(.X509ExtensionID.keyUsage) == true)
        #expect(try leaf.extensions.keyUsage == KeyUsage(digitalSignature: true))
        #expect(critical(.X509ExtensionID.extendedKeyUsage) == false)
        #expect(try leaf.extensions.extendedKeyUsage == ExtendedKeyUsage([.serverAuth, .clientAuth]))
        #expect(
            try leaf.extensions.authorityKeyIdentifier?.keyIdentifier
                == ca.rootCertificate.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(issued.privateKey.publicKey == leaf.publicKey)

        var verifier = Verifier(rootCertificates: CertificateStore([ca.rootCertificate])) {
            RFC5280Policy(fixedExpiryValidationTime: self.now)
            SPIFFEPolicy(expected: issued.identity)
        }
        let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
        guard case .validCertificate(let chain) = result else {
            Issue.record("not valid under the root: \(result)")
            return
        }
        #expect(Array(chain) == [leaf, ca.rootCertificate])

        // A day and a minute later the same certificate has expired.
        var later = Verifier(rootCertificates: CertificateStore([ca.rootCertificate])) {
            RFC5280Policy(fixedExpiryValidationTime: self.now.addingTimeInterval(24 * 3600))
            SPIFFEPolicy(expected: issued.identity)
        }
        guard case .couldNotValidate = await later.validate(leaf: leaf, intermediates: CertificateStore()) else {
            Issue.record("an expired certificate was accepted")
            return
        }
    }

    @Test func eachIssueHasItsOwnKeyAndSerial() throws {
        let ca = try MeshCA.create(now: self.now)
        let first = try ca.issue(namespace: "default", serviceAccount: "reviews", now: self.now)
        let second = try ca.issue(namespace: "default", serviceAccount: "reviews", now: self.now)
        #expect(first.certificate.publicKey != second.certificate.publicKey)
        #expect(first.certificate.serialNumber != second.certificate.serialNumber)
    }

    @Test func ttlIsBounded() throws {
        let ca = try MeshCA.create(now: self.now)
        let hour = try ca.issue(namespace: "default", serviceAccount: "reviews", ttl: 3600, now: self.now)
        #expect(hour.notAfter.timeIntervalSince(hour.notBefore) == 3600)
        for ttl: TimeInterval in [0, -5, 90 * 24 * 3600 + 1] {
            #expect { try ca.issue(namespace: "default", serviceAccount: "reviews", ttl: ttl, now: self.now) } throws: {
                ($0 as! MeshCAError).code == .invalidTTL
            }
        }
        // Near the root's end, a certificate that would outlive it is refused.
        let late = ca.rootCertificate.notValidAfter.addingTimeInterval(-3600)
        #expect { try ca.issue(namespace: "default", serviceAccount: "reviews", now: late) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .invalidTTL && error.message.contains("outlive the root")
        }
    }

    @Test func issueRefusesIllegalNamesAndForeignTrustDomains() throws {
        let ca = try MeshCA.create(now: self.now)
        #expect { try ca.issue(namespace: "default", serviceAccount: "Bad_SA!", now: self.now) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .invalidIdentity && error.message.hasPrefix("service account 'Bad_SA!'")
        }
        let foreign = try SPIFFEID(trustDomain: "other.domain", namespace: "default", serviceAccount: "reviews")
        #expect { try ca.issue(for: foreign, now: self.now) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .invalidIdentity && error.message.contains("not this CA's")
        }
    }

    @Test func workloadDirectoryRoundTrips() throws {
        let caDirectory = self.temporaryDirectory()
        let out = self.temporaryDirectory() + "/reviews"
        defer {
            try? FileManager.default.removeItem(atPath: caDirectory)
            try? FileManager.default.removeItem(atPath: out)
        }
        let ca = try MeshCA.initialize(directory: caDirectory, now: self.now)
        let issued = try MeshCA.load(directory: caDirectory).issue(namespace: "bookinfo", serviceAccount: "reviews", ttl: 7200, now: self.now)
        try issued.write(to: out)
        #expect(self.mode(out + "/key.pem") == 0o600)
        let chainText = try String(contentsOfFile: out + "/cert-chain.pem", encoding: .utf8)
        let chain = try PEMDocument.parseMultiple(pemString: chainText).map { try Certificate(pemDocument: $0) }
        #expect(chain == [issued.certificate, ca.rootCertificate])
        let rootText = try String(contentsOfFile: out + "/root-cert.pem", encoding: .utf8)
        #expect(try Certificate(pemEncoded: rootText) == ca.rootCertificate)
        #expect(try String(contentsOfFile: caDirectory + "/root-cert.pem", encoding: .utf8) == rootText)

        let loaded = try WorkloadCertificate.load(directory: out)
        #expect(loaded.identity.uri == "spiffe://cluster.local/ns/bookinfo/sa/reviews")
        #expect(loaded.certificate == issued.certificate)
        #expect(loaded.rootCertificate == ca.rootCertificate)
        #expect(loaded.notAfter == self.now.addingTimeInterval(-60 + 7200))

        // Rotation rewrites the same files in place; the old ones are replaced whole.
        let renewed = try ca.issue(namespace: "bookinfo", serviceAccount: "reviews", ttl: 7200, now: self.now.addingTimeInterval(3600))
        try renewed.write(to: out)
        #expect(try WorkloadCertificate.load(directory: out).certificate == renewed.certificate)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["cert-chain.pem", "key.pem", "root-cert.pem"])

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: out + "/key.pem")
        #expect { try WorkloadCertificate.load(directory: out) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .insecureKeyFile && error.message.contains("\(out)/key.pem has mode 0644")
        }
    }

    @Test func aCertificateWithoutOneSPIFFESANIsNoIdentity() throws {
        let ca = try MeshCA.create(now: self.now)
        #expect { try SPIFFEID(certificate: ca.rootCertificate) } throws: { error in
            let error = error as! MeshCAError
            return error.code == .invalidIdentity && error.message.contains("has 0")
        }
    }

    @Test(arguments: [
        ("24h", 86400.0), ("90m", 5400.0), ("3600s", 3600.0), ("1h30m", 5400.0), ("2h0m5s", 7205.0), ("0s", 0.0),
    ])
    func parsesTTLs(_ text: String, _ seconds: Double) {
        #expect(MeshCA.parseTTL(text) == seconds)
    }

    @Test(arguments: ["", "24", "h", "1.5h", "-1h", "24x", "1d", "3600 s", "99999999999h"])
    func refusesOtherTTLs(_ text: String) {
        #expect(MeshCA.parseTTL(text) == nil)
    }
}

/// Checks the SPIFFE SAN of the leaf, so the verifier accepts the critical SAN extension (RFC 5280
/// alone leaves it to the application).
private struct SPIFFEPolicy: VerifierPolicy {
    let expected: SPIFFEID
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        guard let identity = try? SPIFFEID(certificate: chain.leaf), identity == self.expected else {
            return .failsToMeetPolicy(reason: "the leaf is not \(self.expected)")
        }
        return .meetsPolicy
    }
}

import ArgumentParser
import Foundation
import MeshCA

/// `meshgate ca`: the mesh CA on the command line. The root lives in a directory (`root-cert.pem`,
/// `root-key.pem` 0600); workload certificates go to another (`cert-chain.pem`, `key.pem` 0600,
/// `root-cert.pem`).
struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca",
        abstract: "The mesh CA: a root and SPIFFE workload certificates.",
        subcommands: [Init.self, Issue.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a root CA (ECDSA P-256, 10 years) in a directory."
        )
        @Option(help: "The CA directory (created 0700).") var dir: String
        @Option(help: "The trust domain, the root's O= and every SPIFFE ID's host.")
        var trustDomain: String = SPIFFEID.defaultTrustDomain

        func run() throws {
            try CACommand.reportingErrors { () throws(MeshCAError) in
                let ca = try MeshCA.initialize(directory: self.dir, trustDomain: self.trustDomain, now: Date())
                print("created the root CA of trust domain \(ca.trustDomain) in \(self.dir), valid until \(ca.rootCertificate.notValidAfter)")
            }
        }
    }

    struct Issue: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "issue",
            abstract: "Issue a workload certificate for spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT."
        )
        @Option(help: "The CA directory written by 'meshgate ca init'.") var dir: String
        @Option(help: "The workload's namespace.") var namespace: String
        @Option(help: "The workload's service account.") var serviceAccount: String
        @Option(help: "Where to write cert-chain.pem, key.pem and root-cert.pem.") var out: String
        @Option(help: "The certificate's lifetime, e.g. 24h, 90m, 3600s (at most 2160h).") var ttl: String = "24h"

        func run() throws {
            guard let ttl = MeshCA.parseTTL(self.ttl) else {
                throw ValidationError("--ttl '\(self.ttl)': use a duration such as 24h, 90m or 3600s")
            }
            try CACommand.reportingErrors { () throws(MeshCAError) in
                let ca = try MeshCA.load(directory: self.dir)
                let issued = try ca.issue(namespace: self.namespace, serviceAccount: self.serviceAccount, ttl: ttl, now: Date())
                try issued.write(to: self.out)
                print("issued \(issued.identity) into \(self.out), valid until \(issued.notAfter), renew after \(issued.renewalTime())")
            }
        }
    }

    /// Prints a CA error as one line on standard error and exits 1, without the usage text.
    static func reportingErrors(_ body: () throws(MeshCAError) -> Void) throws {
        do {
            try body()
        } catch {
            FileHandle.standardError.write(Data("meshgate ca: error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

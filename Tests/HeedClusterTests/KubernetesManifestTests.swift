import Foundation
import Testing
import Yams

/// The Kubernetes recipe (`cluster/k8s/`), checked offline: no cluster, no kubectl or
/// schema validator works here. What is checked: every document parses as YAML and has
/// apiVersion, kind and a name; every heed container's arguments name a role and only
/// flags that role's `--help` lists; `$(VAR)` references are defined; listen, advertise
/// and coordinator addresses agree with container ports, Service names, ports and
/// selectors; the cluster secret comes from the Kubernetes Secret `heed-cluster-secret`
/// mounted owner-read-only where `--secret-file` points; the run config from the
/// ConfigMap `heed-run` where `--config` points. Not checked: the Kubernetes API schema,
/// the image, and that the run config's server/worker counts match the replicas and
/// completions (the config is the user's; cluster/README.md says so).
@Suite struct KubernetesManifestTests {
    static let directory = ClusterHarness.repository + "/cluster/k8s"

    struct Container {
        let owner: String
        let labels: [String: String]
        let node: Node
        let volumes: [Node]
        /// The heed command line: the role, then its flags and values.
        let argv: [String]
    }

    let documents: [(file: String, node: Node)]

    init() throws {
        var documents: [(String, Node)] = []
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasSuffix(".yaml") }.sorted()
        for file in files {
            let text = try String(contentsOfFile: "\(Self.directory)/\(file)", encoding: .utf8)
            for case let node? in try Yams.compose_all(yaml: text) { documents.append((file, node)) }
        }
        self.documents = documents
    }

    func string(_ node: Node?) -> String? { node?.scalar?.string }

    func labels(_ node: Node?) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in node?.mapping ?? [:] { if let k = k.scalar?.string, let v = v.scalar?.string { out[k] = v } }
        return out
    }

    /// Every heed container with the pod metadata and volumes it runs under.
    func containers() throws -> [Container] {
        var out: [Container] = []
        for (file, doc) in documents {
            let kind = string(doc["kind"]) ?? ""
            let pod: (meta: Node?, spec: Node?) = kind == "Pod" ? (doc["metadata"], doc["spec"])
                : (doc["spec"]?["template"]?["metadata"], doc["spec"]?["template"]?["spec"])
            guard let spec = pod.spec, let list = spec["containers"] else { continue }
            for c in list.array() {
                let command = (c["command"]?.array() ?? []).compactMap(string)
                let args = (c["args"]?.array() ?? []).compactMap(string)
                var argv: [String]
                if command == ["sh", "-c"] {
                    let words = (args.first ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
                    let start = try #require(words.firstIndex(of: "heed"), "\(file): the shell line does not exec heed")
                    #expect(words.first == "exec", "\(file): the shell should exec heed so signals reach it")
                    argv = Array(words[(start + 1)...])
                } else {
                    #expect(command.isEmpty || command == ["heed"], "\(file): unexpected command \(command)")
                    argv = args
                }
                out.append(Container(owner: "\(file) \(kind) \(string(doc["metadata"]?["name"]) ?? "?")",
                                     labels: labels(pod.meta?["labels"]), node: c, volumes: spec["volumes"]?.array() ?? [], argv: argv))
            }
        }
        return out
    }

    func value(of flag: String, in argv: [String]) -> String? {
        argv.firstIndex(of: flag).flatMap { $0 + 1 < argv.count ? argv[$0 + 1] : nil }
    }

    /// Host and port of `tcp://HOST:PORT`.
    func endpoint(_ address: String?) -> (host: String, port: Int)? {
        guard let address, address.hasPrefix("tcp://"), let colon = address.lastIndex(of: ":") else { return nil }
        return (String(address[address.index(address.startIndex, offsetBy: 6)..<colon]), Int(address[address.index(after: colon)...]) ?? -1)
    }

    func services() -> [(name: String, selector: [String: String], ports: [Int], headless: Bool)] {
        documents.filter { string($0.node["kind"]) == "Service" }.map { _, doc in
            (string(doc["metadata"]?["name"]) ?? "", labels(doc["spec"]?["selector"]),
             (doc["spec"]?["ports"]?.array() ?? []).compactMap { $0["port"]?.int }, string(doc["spec"]?["clusterIP"]) == "None")
        }
    }

    @Test func everyDocumentParsesAndIsNamed() throws {
        #expect(documents.count >= 5)
        for (file, doc) in documents {
            #expect(string(doc["apiVersion"]) != nil, "\(file): apiVersion")
            #expect(string(doc["kind"]) != nil, "\(file): kind")
            #expect(string(doc["metadata"]?["name"]) != nil, "\(file): metadata.name")
        }
        let kinds = Set(documents.compactMap { string($0.node["kind"]) })
        #expect(kinds.isSuperset(of: ["Service", "Pod", "StatefulSet", "Job"]))
    }

    /// The flags each role accepts, read from the real binary's help.
    func flags(of role: String) async throws -> Set<String> {
        let run = try LauncherTests.Run([role, "--help"])
        #expect(await run.exit(within: 30) == 0, "\(run.output)")
        var flags = Set<String>()
        for word in run.output.split(whereSeparator: { $0.isWhitespace || $0 == "," || $0 == "[" || $0 == "]" || $0 == "(" || $0 == ")" })
        where word.hasPrefix("--") && word.count > 2 {
            flags.insert(String(word.prefix { $0 != "=" && $0 != "<" }))
        }
        return flags
    }

    @Test func argumentsNameARoleAndOnlyItsFlags() async throws {
        let all = try containers()
        #expect(Set(all.compactMap(\.argv.first)) == ["coordinator", "server", "worker"])
        for c in all {
            let role = try #require(c.argv.first)
            let accepted = try await flags(of: role)
            #expect(accepted.contains("--secret-file"), "help of \(role) not parsed: \(accepted)")
            for word in c.argv.dropFirst() where word.hasPrefix("--") {
                #expect(accepted.contains(word), "\(c.owner): heed \(role) has no flag \(word)")
            }
            // Every $(VAR) Kubernetes expands must be defined in the container's env; the
            // completion index is set by indexed Jobs.
            let env = Set((c.node["env"]?.array() ?? []).compactMap { string($0["name"]) })
            for word in c.argv {
                var rest = Substring(word)
                while let open = rest.range(of: "$("), let close = rest[open.upperBound...].firstIndex(of: ")") {
                    let name = String(rest[open.upperBound..<close])
                    #expect(env.contains(name), "\(c.owner): $(\(name)) is not defined")
                    rest = rest[rest.index(after: close)...]
                }
            }
            if role == "worker" {
                #expect(value(of: "--rank", in: c.argv) == "$JOB_COMPLETION_INDEX", "\(c.owner): worker rank")
            }
        }
    }

    @Test func addressesPortsAndSelectorsAgree() throws {
        let all = try containers()
        let services = services()
        let coordinator = try #require(all.first { $0.argv.first == "coordinator" })
        let listen = try #require(endpoint(value(of: "--listen", in: coordinator.argv)))
        #expect(listen.host == "$(POD_IP)", "the coordinator listens on the pod's address only")
        let ports = { (c: Container) in Set((c.node["ports"]?.array() ?? []).compactMap { $0["containerPort"]?.int }) }
        #expect(ports(coordinator).contains(listen.port))
        for c in all where c.argv.first != "coordinator" {
            // Every other role dials a Service that selects the coordinator pod on its port.
            let dial = try #require(endpoint(value(of: "--coordinator", in: c.argv)), "\(c.owner)")
            let service = try #require(services.first { $0.name == dial.host }, "\(c.owner): no Service \(dial.host)")
            #expect(service.ports.contains(dial.port) && dial.port == listen.port, "\(c.owner): port \(dial.port)")
            #expect(service.selector.allSatisfy { coordinator.labels[$0.key] == $0.value }, "Service \(service.name) does not select the coordinator")
        }
        for c in all where c.argv.first == "server" {
            let listen = try #require(endpoint(value(of: "--listen", in: c.argv)))
            #expect(listen.host == "$(POD_IP)", "\(c.owner): servers listen on the pod's address only")
            #expect(ports(c).contains(listen.port))
            // Workers dial POD.SERVICE: a headless Service selecting the server pods, same port.
            let advertise = try #require(endpoint(value(of: "--advertise", in: c.argv)))
            #expect(advertise.port == listen.port)
            let serviceName = String(advertise.host.split(separator: ".").last ?? "")
            let service = try #require(services.first { $0.name == serviceName }, "no Service \(serviceName)")
            #expect(service.headless && service.ports.contains(listen.port))
            #expect(service.selector.allSatisfy { c.labels[$0.key] == $0.value })
            let statefulSet = try #require(documents.first { string($0.node["kind"]) == "StatefulSet" }?.node)
            #expect(string(statefulSet["spec"]?["serviceName"]) == serviceName)
            #expect(labels(statefulSet["spec"]?["selector"]?["matchLabels"]).allSatisfy { c.labels[$0.key] == $0.value })
        }
    }

    @Test func theSecretAndTheConfigComeFromTheirKubernetesObjects() throws {
        for c in try containers() {
            let mounts = (c.node["volumeMounts"]?.array() ?? []).compactMap { m -> (path: String, volume: String)? in
                guard let p = string(m["mountPath"]), let v = string(m["name"]) else { return nil }
                return (p, v)
            }
            func volume(holding file: String) throws -> Node {
                let dir = (file as NSString).deletingLastPathComponent
                let mount = try #require(mounts.first { $0.path == dir }, "\(c.owner): nothing mounted at \(dir)")
                return try #require(c.volumes.first { string($0["name"]) == mount.volume }, "\(c.owner): no volume \(mount.volume)")
            }
            let secretFile = try #require(value(of: "--secret-file", in: c.argv), "\(c.owner): no --secret-file")
            let secret = try volume(holding: secretFile)
            #expect(string(secret["secret"]?["secretName"]) == "heed-cluster-secret", "\(c.owner)")
            #expect(string(secret["secret"]?["defaultMode"]) == "0400", "\(c.owner): the secret must be owner-read-only")
            #expect((secretFile as NSString).lastPathComponent == "key", "kubectl create secret … --from-file=key=… makes the file 'key'")
            if let config = value(of: "--config", in: c.argv) {
                let volume = try volume(holding: config)
                #expect(string(volume["configMap"]?["name"]) == "heed-run", "\(c.owner)")
            }
        }
    }
}

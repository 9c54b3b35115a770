import Foundation
import XCTest
import Daemon

/// Keeps `Deploy/` true to `DaemonConfig`: the example configuration, every `CLIPD_*` variable the
/// manifests set, the reference table in Deploy/README.md, and the stop timeouts that must outlast
/// the drain bound. A key renamed or added in DaemonConfig fails here until Deploy/ follows.
final class DeployConsistencyTests: XCTestCase {
    /// Variables the executable reads that are not configuration keys (process set-up, other commands).
    static let processVariables: Set<String> = ["CLIPD_LOG_LEVEL", "CLIPD_MIGRATIONS_DIR"]

    static var configVariables: Set<String> { Set(DaemonConfig.keys.map(environmentName)) }

    static func environmentName(_ key: String) -> String { "CLIPD_" + key.uppercased() }

    // MARK: example configuration

    func testExampleConfigNamesEveryKeyAndNothingElse() throws {
        let object = try jsonObject(try deployText("clipd.example.json"))
        let unknown = Set(object.keys).subtracting(DaemonConfig.keys)
        let missing = Set(DaemonConfig.keys).subtracting(object.keys)
        XCTAssertEqual(unknown, [], "keys DaemonConfig does not know (the daemon refuses them)")
        XCTAssertEqual(missing, [], "keys the complete example leaves out")
    }

    func testExampleConfigDecodesAndIsUsable() throws {
        let data = Data(try deployText("clipd.example.json").utf8)
        let config = try JSONDecoder().decode(DaemonConfig.self, from: data)
        XCTAssertNil(config.problem())
        XCTAssertNotEqual(config, DaemonConfig(), "the example shows values, not only defaults")
        XCTAssertEqual(config.effectiveDLQTopic, "clipd.records.dlq")
    }

    func testKubernetesConfigMapHoldsAUsableConfig() throws {
        let config = try kubernetesConfig()
        XCTAssertNil(config.problem())
    }

    // MARK: environment variables

    func testEveryCLIPDVariableInDeployIsAConfigKeyOrAProcessVariable() throws {
        let files = [
            "compose/compose.yaml", "container/Dockerfile", "systemd/clipd.service", "systemd/clipd.env.example",
            "README.md",
        ] + (try kubernetesManifests())
        var seen: Set<String> = []
        for file in files {
            let names = variableNames(in: try deployText(file))
            let unknown = names.subtracting(Self.configVariables).subtracting(Self.processVariables)
            XCTAssertEqual(unknown, [], "\(file) names variables that are not CLIPD_ + an upper-cased DaemonConfig key")
            seen.formUnion(names)
        }
        // The scan must have found the variables the manifests are known to rely on.
        for required in ["CLIPD_DATABASE_URL", "CLIPD_BROKERS", "CLIPD_MODEL", "CLIPD_HTTP_PORT"] {
            XCTAssertTrue(seen.contains(required), "\(required) not found in any Deploy file")
        }
    }

    func testVariableScanRejectsAMisspelledKey() {
        let names = variableNames(in: "environment:\n  CLIPD_BATCHSIZE: \"16\"\n  CLIPD_BATCH_SIZE: \"16\"\n")
        XCTAssertEqual(names, ["CLIPD_BATCHSIZE", "CLIPD_BATCH_SIZE"])
        XCTAssertEqual(names.subtracting(Self.configVariables), ["CLIPD_BATCHSIZE"])
    }

    func testKubernetesSecretAndDeploymentAgreeOnTheDatabaseURL() throws {
        let secret = try deployText("kubernetes/secret.example.yaml")
        let deployment = try deployText("kubernetes/deployment.yaml")
        XCTAssertTrue(variableNames(in: secret).contains("CLIPD_DATABASE_URL"))
        XCTAssertTrue(deployment.contains("name: clipd-secrets"), "the deployment takes its environment from the secret")
        XCTAssertTrue(secret.contains("name: clipd-secrets"))
    }

    func testKustomizationAppliesEveryManifestButTheSecretExample() throws {
        let text = try deployText("kubernetes/kustomization.yaml")
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let start = try XCTUnwrap(lines.firstIndex(of: "resources:"))
        let listed = lines[(start + 1)...].prefix(while: { $0.hasPrefix("- ") }).map { String($0.dropFirst(2)) }
        let manifests = try kubernetesManifests().map { String($0.dropFirst("kubernetes/".count)) }
        XCTAssertEqual(Set(listed), Set(manifests).subtracting(["kustomization.yaml", "secret.example.yaml"]))
    }

    /// A C library added to the developer set-up must reach the image's build stage too.
    func testImageBuildStageInstallsEveryDevelopmentPackageOfTheDevSetup() throws {
        let script = try deployText("dev/install-deps.sh")
        let list = try XCTUnwrap(script.range(of: "PKGS=(").flatMap { start in
            script[start.upperBound...].range(of: ")").map { script[start.upperBound..<$0.lowerBound] }
        }, "install-deps.sh lists its packages in PKGS=(…)")
        let developmentPackages = list.split(whereSeparator: \.isWhitespace).map(String.init).filter { $0.hasSuffix("-dev") }
        XCTAssertFalse(developmentPackages.isEmpty)
        let dockerfile = try deployText("container/Dockerfile")
        let buildStage = try XCTUnwrap(dockerfile.range(of: " AS build").flatMap { start in
            dockerfile[start.upperBound...].range(of: " AS runtime").map { dockerfile[start.upperBound..<$0.lowerBound] }
        }, "the Dockerfile has a build and a runtime stage")
        let installed = Set(buildStage.split(whereSeparator: \.isWhitespace).map(String.init))
        for package in developmentPackages {
            XCTAssertTrue(installed.contains(package), "\(package) is in Deploy/dev/install-deps.sh but not in the image's build stage")
        }
    }

    // MARK: reference table

    func testReadmeReferenceTableListsEveryKeyOnceWithItsVariableFlagAndDefault() throws {
        let rows = try referenceRows()
        XCTAssertEqual(rows.map(\.key).sorted(), DaemonConfig.keys.sorted(), "one row per key")
        let defaults = try jsonObject(String(decoding: try JSONEncoder().encode(DaemonConfig()), as: UTF8.self))
        for row in rows {
            XCTAssertEqual(row.variable, Self.environmentName(row.key), "env var of \(row.key)")
            XCTAssertTrue(row.flag.hasPrefix("--"), "flag of \(row.key): \(row.flag)")
            guard let expected = defaults[row.key] else { continue }  // nil defaults are described in words
            XCTAssertTrue(sameValue(cell: row.defaultValue, expected), "default of \(row.key): README says \(row.defaultValue), DaemonConfig has \(expected)")
        }
    }

    // MARK: stop timeouts against the drain bound

    func testStopTimeoutsOutlastTheDrainBound() throws {
        let example = try JSONDecoder().decode(DaemonConfig.self, from: Data(try deployText("clipd.example.json").utf8))
        let unit = try deployText("systemd/clipd.service")
        let stop = try XCTUnwrap(firstInteger(after: "TimeoutStopSec=", in: unit), "TimeoutStopSec in clipd.service")
        XCTAssertGreaterThan(Double(stop), example.drainTimeoutSeconds + 5, "systemd kills before the drain can finish")

        let kubernetes = try kubernetesConfig()
        let deployment = try deployText("kubernetes/deployment.yaml")
        let grace = try XCTUnwrap(firstInteger(after: "terminationGracePeriodSeconds:", in: deployment))
        XCTAssertGreaterThan(Double(grace), kubernetes.drainTimeoutSeconds + 5, "Kubernetes kills before the drain can finish")
        let port = try XCTUnwrap(firstInteger(after: "containerPort:", in: deployment))
        XCTAssertEqual(port, kubernetes.httpPort, "probes and scraping target the configured http_port")

        let compose = try deployText("compose/compose.yaml")
        let composeDrain = firstInteger(after: "CLIPD_DRAIN_TIMEOUT_SECONDS:", in: compose).map(Double.init) ?? DaemonConfig().drainTimeoutSeconds
        let composeGrace = try XCTUnwrap(firstInteger(after: "stop_grace_period:", in: compose), "stop_grace_period in compose.yaml")
        XCTAssertGreaterThan(Double(composeGrace), composeDrain + 5, "docker kills before the drain can finish")
    }

    // MARK: helpers

    struct ReferenceRow { var key, variable, flag, defaultValue: String }

    /// Rows of the table whose header starts with `| key | env var | flag | default |`.
    func referenceRows() throws -> [ReferenceRow] {
        let lines = try deployText("README.md").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.firstIndex(where: { cells($0).prefix(4) == ["key", "env var", "flag", "default"] }) else {
            XCTFail("Deploy/README.md has no table headed | key | env var | flag | default | meaning |")
            return []
        }
        return lines[(header + 2)...].prefix(while: { $0.hasPrefix("|") }).map { line in
            let c = cells(line)
            return ReferenceRow(key: unquoted(c[0]), variable: unquoted(c[1]), flag: unquoted(c[2]), defaultValue: unquoted(c[3]))
        }
    }

    func cells(_ line: String) -> [String] {
        guard line.hasPrefix("|") else { return [] }
        return line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
            .map { $0.trimmingCharacters(in: .whitespaces) }
    }

    func unquoted(_ cell: String) -> String { cell.replacingOccurrences(of: "`", with: "") }

    /// A README default cell against the JSON value of the default: strings verbatim, anything
    /// else as a JSON literal (numbers compared numerically, so `30` matches 30.0).
    func sameValue(cell: String, _ expected: Any) -> Bool {
        if let string = expected as? String { return cell == string }
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(cell.utf8), options: .fragmentsAllowed) else { return false }
        if let expectedObject = expected as? [String: Any], let parsedObject = parsed as? [String: Any] {
            return NSDictionary(dictionary: expectedObject).isEqual(to: parsedObject)
        }
        if let expectedList = expected as? [Any], let parsedList = parsed as? [Any] {
            return expectedList.map { "\($0)" } == parsedList.map { "\($0)" }
        }
        guard let expectedNumber = expected as? NSNumber, let parsedNumber = parsed as? NSNumber else { return false }
        if cell == "true" || cell == "false" { return expectedNumber.boolValue == (cell == "true") }
        return expectedNumber.doubleValue == parsedNumber.doubleValue
    }

    func variableNames(in text: String) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: "CLIPD_[A-Z0-9_]+")
        let range = NSRange(text.startIndex..., in: text)
        return Set(pattern.matches(in: text, range: range).compactMap { Range($0.range, in: text).map { String(text[$0]) } })
    }

    func firstInteger(after marker: String, in text: String) -> Int? {
        guard let start = text.range(of: marker)?.upperBound else { return nil }
        let rest = text[start...].drop(while: { $0 == " " || $0 == "\"" || $0 == "'" })
        return Int(rest.prefix(while: \.isNumber))
    }

    func jsonObject(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "a JSON object")
    }

    /// The `clipd.json` block of the ConfigMap, layered over the defaults as `clipd run --config` does.
    func kubernetesConfig() throws -> DaemonConfig {
        let text = try deployText("kubernetes/configmap.yaml")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try XCTUnwrap(lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "clipd.json: |" }),
                                  "configmap.yaml has a `clipd.json: |` block")
        let indent = lines[start].prefix(while: { $0 == " " }).count
        let block = lines[(start + 1)...].prefix(while: { $0.trimmingCharacters(in: .whitespaces).isEmpty || $0.prefix(while: { $0 == " " }).count > indent })
        let file = try jsonObject(block.joined(separator: "\n"))
        XCTAssertEqual(Set(file.keys).subtracting(DaemonConfig.keys), [], "unknown keys in the ConfigMap's clipd.json")
        var layered = try jsonObject(String(decoding: try JSONEncoder().encode(DaemonConfig()), as: UTF8.self))
        layered.merge(file) { _, fromFile in fromFile }
        return try JSONDecoder().decode(DaemonConfig.self, from: try JSONSerialization.data(withJSONObject: layered))
    }

    func kubernetesManifests() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: deployDirectory.appendingPathComponent("kubernetes").path)
            .filter { $0.hasSuffix(".yaml") }.sorted().map { "kubernetes/" + $0 }
    }

    var deployDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Deploy")
    }

    func deployText(_ relativePath: String) throws -> String {
        try String(contentsOf: deployDirectory.appendingPathComponent(relativePath), encoding: .utf8)
    }
}

final class AutoscalingAndMetricsTests: XCTestCase {
    var deployDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Deploy")
    }

    /// The KEDA ScaledObject scales the Deployment on the lag of the group and topic the
    /// ConfigMap's daemons consume, from the same brokers.
    func testKEDAScaledObjectMatchesTheDeploymentAndConfig() throws {
        let scaled = try String(contentsOf: deployDirectory.appendingPathComponent("kubernetes/autoscaling/keda-scaledobject.yaml"), encoding: .utf8)
        let configMap = try String(contentsOf: deployDirectory.appendingPathComponent("kubernetes/configmap.yaml"), encoding: .utf8)
        let json = String(configMap[configMap.range(of: "{")!.lowerBound...configMap.range(of: "}", options: .backwards)!.lowerBound])
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        func value(_ key: String) -> String? {
            scaled.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .first { $0.hasPrefix(key + ":") }
                .map { $0.dropFirst(key.count + 1).split(separator: "#")[0].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        XCTAssertEqual(value("bootstrapServers"), config["brokers"] as? String)
        XCTAssertEqual(value("consumerGroup"), config["group"] as? String)
        XCTAssertEqual(value("topic"), config["topic"] as? String)
        XCTAssertEqual(value("kind"), "ScaledObject")
        XCTAssertEqual(value("allowIdleConsumers"), "false", "never more replicas than partitions")
        let deployment = try String(contentsOf: deployDirectory.appendingPathComponent("kubernetes/deployment.yaml"), encoding: .utf8)
        XCTAssertTrue(deployment.contains("  name: \(value("name") ?? "?")\n"), "scaleTargetRef names the Deployment")
        XCTAssertNotNil(value("maxReplicaCount").flatMap(Int.init))
    }

    func testHelpLinesAreAddedBeforeEachKnownFamilyOnce() {
        let exposition = """
            # TYPE clipd_records_written_total counter
            clipd_records_written_total 3
            # HELP already_helped Given by the registry.
            # TYPE already_helped gauge
            already_helped 1
            # TYPE unknown_metric gauge
            unknown_metric 2

            """
        let annotated = MetricsHelp.annotate(exposition, texts: ["clipd_records_written_total": "Records written.\\ok", "already_helped": "x"])
        XCTAssertEqual(annotated, """
            # HELP clipd_records_written_total Records written.\\\\ok
            # TYPE clipd_records_written_total counter
            clipd_records_written_total 3
            # HELP already_helped Given by the registry.
            # TYPE already_helped gauge
            already_helped 1
            # TYPE unknown_metric gauge
            unknown_metric 2

            """)
        XCTAssertTrue(MetricsHelp.texts.keys.contains("clipd_records_failed_total"))
    }
}

"""Checks on the rendered Kubernetes manifests of ai-service (deploy/check.sh runs it).

Usage: check_manifests.py BIN NAME=FILE...   where NAME is one of
  k8s          deploy/k8s/ resources (concatenated, as kustomize would list them)
  default      helm template with the chart's defaults
  documented   helm template with ci/documented-values.yaml
  timeout45    the documented values with config.timeout=45s (checksum must change)
  own-secret   a key given, no existingSecret: the chart's Secret
  existing     existingSecret set (and a key, which it must ignore)
  extras       TLS, Redis, client keys, trace export, Vault, backup (IRSA and a credentials
               Secret), autoscaling, ServiceMonitor, pod annotations
  routes       providers, routes and extraConfig merged into the config

Each check prints one line; the last line is "manifest checks: N passed, M failed" and the
exit code is 1 when any failed. BIN is the ai-service binary, used for `check-config`.
"""

import base64
import os
import re
import subprocess
import sys
import tempfile

import yaml

BIN = sys.argv[1]
RENDERS = dict(arg.split("=", 1) for arg in sys.argv[2:])
PASSED = 0
FAILED = 0
DUMMY_KEYS = {
    "OPENAI_API_KEY": "sk-dummy-openai",
    "ANTHROPIC_API_KEY": "sk-ant-dummy",
    "GROQ_API_KEY": "gsk_dummy",
}
DOC_RESOURCES = {"limits": {"cpu": "500m", "memory": "512Mi"},
                 "requests": {"cpu": "250m", "memory": "256Mi"}}
KEY_ENVS = {"OPENAI_API_KEY": "openai-key", "ANTHROPIC_API_KEY": "anthropic-key",
            "GROQ_API_KEY": "groq-key"}


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"  ok   {name}")
    else:
        FAILED += 1
        print(f"  FAIL {name}{': ' + str(detail) if detail else ''}")
    return ok


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    return found[0] if len(found) == 1 else None


def seconds(text):
    m = re.fullmatch(r"(\d+)s", str(text))
    return int(m.group(1)) if m else None


def check_config(text, env_extra):
    """Runs `ai-service check-config` on text with a clean environment plus env_extra."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env_extra}
        run = subprocess.run([BIN, "check-config", path], env=env, capture_output=True,
                             text=True, timeout=30)
        return run.returncode, (run.stdout + run.stderr).strip()
    finally:
        os.unlink(path)


def workload(docs, label, *, replicas, image, secret, helm):
    """The checks every Deployment variant must pass; returns (deployment, config dict)."""
    dep = one(docs, "Deployment")
    if not check(f"{label}: exactly one Deployment", dep is not None):
        return None, None
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    if replicas is not None:
        check(f"{label}: replicas = {replicas}", spec.get("replicas") == replicas, spec.get("replicas"))
    containers = pod.get("containers", [])
    check(f"{label}: one container", len(containers) == 1, len(containers))
    c = containers[0]
    check(f"{label}: image {image}", c.get("image") == image, c.get("image"))
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    check(f"{label}: containerPort 8080 named grpc, 9090 named metrics",
          ports == {"grpc": 8080, "metrics": 9090}, ports)
    check(f"{label}: args serve (the image's CMD)", c.get("args") == ["serve"], c.get("args"))

    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        grpc = (c.get(probe) or {}).get("grpc") or {}
        check(f"{label}: {probe} is a native grpc probe on 8080", grpc.get("port") == 8080, c.get(probe))
    check(f"{label}: readiness probes the chat API by name",
          (c.get("readinessProbe") or {}).get("grpc", {}).get("service") == "aiservice.v1.ChatService")
    live = c.get("livenessProbe") or {}
    check(f"{label}: liveness tolerates a minute of NOT_SERVING",
          live.get("periodSeconds", 10) * live.get("failureThreshold", 3) >= 60, live)

    env = {e["name"]: e for e in c.get("env", [])}
    for var, key in KEY_ENVS.items():
        ref = (env.get(var, {}).get("valueFrom") or {}).get("secretKeyRef") or {}
        check(f"{label}: {var} from secret {secret} key {key}, optional",
              ref == {"name": secret, "key": key, "optional": True}, ref)
    check(f"{label}: no key written in plain env",
          all("value" not in env.get(v, {}) for v in KEY_ENVS))

    check(f"{label}: resources requests 250m/256Mi limits 500m/512Mi",
          c.get("resources") == DOC_RESOURCES, c.get("resources"))

    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    check(f"{label}: runs as non-root",
          (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")) is True
          and (csc.get("runAsUser", psc.get("runAsUser")) or 0) != 0, (psc, csc))
    check(f"{label}: no privilege escalation", csc.get("allowPrivilegeEscalation") is False)
    check(f"{label}: read-only root filesystem", csc.get("readOnlyRootFilesystem") is True)
    check(f"{label}: all capabilities dropped",
          "ALL" in (csc.get("capabilities") or {}).get("drop", []), csc.get("capabilities"))
    check(f"{label}: no privileged container", not csc.get("privileged", False))

    # The config: mounted from the ConfigMap at the path AI_SERVICE_CONFIG names.
    cfg_path = env.get("AI_SERVICE_CONFIG", {}).get("value", "")
    check(f"{label}: AI_SERVICE_CONFIG is /etc/ai-service/config.yaml (as in the image)",
          cfg_path == "/etc/ai-service/config.yaml", cfg_path)
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    vol = vols.get(mounts.get(os.path.dirname(cfg_path)), {})
    cm_name = (vol.get("configMap") or {}).get("name")
    cm = next((d for d in docs if d.get("kind") == "ConfigMap"
               and d["metadata"]["name"] == cm_name), None)
    if not check(f"{label}: config directory mounted from ConfigMap {cm_name}",
                 cm is not None and "config.yaml" in cm.get("data", {}), cm_name):
        return dep, None
    text = cm["data"]["config.yaml"]
    config = yaml.safe_load(text) or {}

    for env_extra, what in (({}, "no keys (echo)"), (DUMMY_KEYS, "dummy keys")):
        rc, out = check_config(text, env_extra)
        check(f"{label}: ConfigMap config passes check-config with {what}", rc == 0, out)

    server = config.get("server", {})
    check(f"{label}: config listens on 0.0.0.0:8080, admin 0.0.0.0:9090",
          server.get("listen") == "0.0.0.0:8080" and server.get("admin_listen") == "0.0.0.0:9090",
          server)
    check(f"{label}: JSON logs", config.get("log", {}).get("format") == "json", config.get("log"))
    delay, grace = seconds(server.get("shutdown_delay")), seconds(server.get("shutdown_grace"))
    tgps = pod.get("terminationGracePeriodSeconds")
    check(f"{label}: terminationGracePeriodSeconds ({tgps}) > shutdown_delay ({delay}s) + "
          f"shutdown_grace ({grace}s)",
          None not in (delay, grace, tgps) and delay >= 1 and tgps > delay + grace,
          (tgps, delay, grace))
    strategy = spec.get("strategy", {}).get("rollingUpdate", {})
    check(f"{label}: rolling update never below the desired count",
          strategy.get("maxUnavailable") == 0, strategy)

    svc = one(docs, "Service")
    if check(f"{label}: one Service", svc is not None):
        sports = {p["name"]: p for p in svc["spec"]["ports"]}
        g = sports.get("grpc", {})
        check(f"{label}: Service port 8080 named grpc with appProtocol grpc",
              g.get("port") == 8080 and g.get("appProtocol") == "grpc"
              and g.get("targetPort") in ("grpc", 8080), g)
        m = sports.get("metrics", {})
        check(f"{label}: Service port 9090 named metrics",
              m.get("port") == 9090 and m.get("targetPort") in ("metrics", 9090), m)
        labels = spec["template"]["metadata"]["labels"]
        sel = svc["spec"]["selector"]
        check(f"{label}: Service selects the pods",
              all(labels.get(k) == v for k, v in sel.items()), (sel, labels))
        check(f"{label}: Deployment selector matches its pods",
              all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()))
    if helm:
        check(f"{label}: checksum/config annotation rolls pods on config change",
              bool(spec["template"]["metadata"].get("annotations", {}).get("checksum/config")))
    return dep, config


def main():
    renders = {name: load(path) for name, path in RENDERS.items()}
    try:
        sections(renders)
    except Exception as e:  # a missing or malformed document: one failure, not a traceback
        check("the rendered documents have the expected shape", False, repr(e))
    print(f"manifest checks: {PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


def sections(renders):

    if "k8s" in renders:
        print("deploy/k8s/")
        docs = renders["k8s"]
        dep, _ = workload(docs, "k8s", replicas=3, image="ai-service:latest",
                          secret="ai-secrets", helm=False)
        pdb, hpa = one(docs, "PodDisruptionBudget"), one(docs, "HorizontalPodAutoscaler")
        labels = dep["spec"]["template"]["metadata"]["labels"] if dep else {}
        check("k8s: PodDisruptionBudget selects the pods", pdb is not None and all(
            labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()))
        check("k8s: HorizontalPodAutoscaler scales the Deployment from 3",
              hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
              and hpa["spec"]["minReplicas"] == 3, hpa and hpa["spec"])
        check("k8s: no Secret applied by the kustomization (example only)",
              one(docs, "Secret") is None)

    if "secret-example" in renders:
        s = one(renders["secret-example"], "Secret")
        check("k8s: example Secret ai-secrets has openai-key, anthropic-key, groq-key",
              s is not None and s["metadata"]["name"] == "ai-secrets"
              and set(s.get("stringData", {})) == {"openai-key", "anthropic-key", "groq-key"})

    for name in ("default", "documented"):
        if name not in renders:
            continue
        print(f"helm template ({name} values)")
        docs = renders[name]
        _, config = workload(docs, name, replicas=3, image="ai-service:latest",
                             secret="ai-service", helm=True)
        if config is not None:
            check(f"{name}: config.max_retries -> routing.max_retries: 3",
                  config.get("routing", {}).get("max_retries") == 3, config.get("routing"))
            check(f"{name}: config.timeout -> server.request_timeout: 30s",
                  config.get("server", {}).get("request_timeout") == "30s")
            check(f"{name}: config.pool_size -> provider_defaults.pool_size: 16",
                  config.get("provider_defaults", {}).get("pool_size") == 16)
            check(f"{name}: no providers/routes, so keys configure providers (echo without)",
                  "providers" not in config and "routes" not in config)
            check(f"{name}: upcoming keys (tls, redis, auth) not rendered",
                  "tls" not in config.get("server", {}) and "redis" not in config
                  and "auth" not in config)
            check(f"{name}: trace export off (no tracing key)", "tracing" not in config,
                  config.get("tracing"))
        check(f"{name}: no Secret created while every key is empty", one(docs, "Secret") is None)
        check(f"{name}: PodDisruptionBudget on, no HPA, no ServiceMonitor",
              one(docs, "PodDisruptionBudget") is not None
              and one(docs, "HorizontalPodAutoscaler") is None
              and one(docs, "ServiceMonitor") is None)

    if "documented" in renders and "default" in renders:
        check("documented values render exactly as the defaults",
              renders["documented"] == renders["default"])

    if "default" in renders:
        pod = one(renders["default"], "Deployment")["spec"]["template"]["spec"]
        config = yaml.safe_load(one(renders["default"], "ConfigMap")["data"]["config.yaml"])
        check("default: no Vault, so no service-account token mounted",
              pod.get("automountServiceAccountToken") is False and "vault" not in config)

    if "timeout45" in renders and "documented" in renders:
        print("helm template (config.timeout=45s)")
        ann = lambda docs: one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        new = yaml.safe_load(one(renders["timeout45"], "ConfigMap")["data"]["config.yaml"])
        check("timeout45: request_timeout 45s", new["server"]["request_timeout"] == "45s")
        check("timeout45: checksum/config changed, so pods roll",
              ann(renders["timeout45"])["checksum/config"] != ann(renders["documented"])["checksum/config"])

    if "own-secret" in renders:
        print("helm template (secrets.openai_key set)")
        docs = renders["own-secret"]
        s = one(docs, "Secret")
        check("own-secret: the chart creates Secret ai-service", s is not None
              and s["metadata"]["name"] == "ai-service")
        if s:
            check("own-secret: it holds openai-key only, base64 of the value",
                  s.get("data") == {"openai-key": base64.b64encode(b"sk-test").decode()}, s.get("data"))
        dep = one(docs, "Deployment")
        env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        check("own-secret: OPENAI_API_KEY from the chart's Secret",
              env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "ai-service")
        check("own-secret: checksum/secret annotation rolls pods on key change",
              "checksum/secret" in dep["spec"]["template"]["metadata"]["annotations"])

    if "existing" in renders:
        print("helm template (existingSecret: ai-secrets)")
        docs = renders["existing"]
        check("existing: no Secret created", one(docs, "Secret") is None)
        workload(docs, "existing", replicas=3, image="ai-service:latest",
                 secret="ai-secrets", helm=True)

    if "extras" in renders:
        print("helm template (extras: tls, redis, client keys, tracing, backup, autoscaling, serviceMonitor)")
        docs = renders["extras"]
        dep = one(docs, "Deployment")
        spec = dep["spec"]
        c = spec["template"]["spec"]["containers"][0]
        config = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
        tls = config["server"].get("tls", {})
        check("extras: server.tls.cert_file/key_file/client_ca_file in the config",
              set(tls) == {"cert_file", "key_file", "client_ca_file"}, tls)
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        check("extras: the TLS files are mounted where the config says",
              all(os.path.dirname(p) in mounts for p in tls.values()), mounts)
        check("extras: with TLS the probes use the admin port's /livez and /readyz",
              c["readinessProbe"].get("httpGet", {}).get("path") == "/readyz"
              and c["livenessProbe"].get("httpGet", {}).get("path") == "/livez")
        check("extras: redis.url in the config",
              config.get("redis") == {"url": "redis://redis.default.svc:6379"}, config.get("redis"))
        check("extras: with Redis, rate limits and the cache are shared by the fleet",
              config.get("limits") == {"backend": "redis"} and config.get("cache", {}).get("backend") == "redis",
              (config.get("limits"), config.get("cache")))
        keys_file = config.get("auth", {}).get("keys_file", "")
        check("extras: auth.keys_file in the config, its directory mounted",
              bool(keys_file) and os.path.dirname(keys_file) in mounts, keys_file)
        otlp = config.get("tracing", {}).get("otlp", {})
        header_file = otlp.get("headers", {}).get("authorization", {}).get("value_file", "")
        check("extras: tracing.otlp endpoint, protocol and sample ratio in the config",
              otlp.get("endpoint") == "http://otel-collector.observability:4317"
              and otlp.get("protocol") == "grpc"
              and config["tracing"].get("sample_ratio") == 0.5, config.get("tracing"))
        vols = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
        mount_names = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        header_vol = vols.get(mount_names.get(os.path.dirname(header_file), ""), {})
        check("extras: the collector header is read from the mounted Secret, not the ConfigMap",
              header_file == "/var/run/ai-service/otlp/otlp-auth"
              and (header_vol.get("secret") or {}).get("secretName") == "ai-service-otlp",
              (header_file, header_vol))
        vault = config.get("vault", {})
        check("extras: vault address, namespace and Kubernetes auth (role, mount) in the config",
              vault.get("address") == "https://vault.vault.svc:8200"
              and vault.get("namespace") == "ai" and vault.get("refresh_interval") == "5m"
              and vault.get("auth") == {"method": "kubernetes", "role": "ai-gateway",
                                        "mount": "kubernetes-prod"}, vault)
        check("extras: the provider key is read from Vault",
              config.get("providers", {}).get("openai", {}).get("api_key_vault")
              == {"path": "secret/data/ai/openai", "field": "key"}, config.get("providers"))
        pod = spec["template"]["spec"]
        check("extras: with Vault the service-account token is mounted, as the named account",
              pod.get("automountServiceAccountToken") is True
              and pod.get("serviceAccountName") == "ai-service", pod.get("serviceAccountName"))
        ca_vol = vols.get(mount_names.get(os.path.dirname(vault.get("ca_cert", "")), ""), {})
        check("extras: Vault's CA is mounted from its Secret where the config says",
              vault.get("ca_cert") == "/var/run/ai-service/vault-ca/ca.crt"
              and (ca_vol.get("secret") or {}).get("secretName") == "vault-ca", ca_vol)
        check("extras: autoscaling leaves replicas to the HPA", "replicas" not in spec)
        hpa = one(docs, "HorizontalPodAutoscaler")
        check("extras: HPA 3..12", hpa is not None and hpa["spec"]["minReplicas"] == 3
              and hpa["spec"]["maxReplicas"] == 12)
        sm = one(docs, "ServiceMonitor")
        check("extras: ServiceMonitor scrapes the metrics port",
              sm is not None and sm["spec"]["endpoints"][0]["port"] == "metrics")
        check("extras: pod annotations kept",
              spec["template"]["metadata"]["annotations"].get("example.com/team") == "llm")
        check("extras: PodDisruptionBudget can be turned off", one(docs, "PodDisruptionBudget") is None)
        backup = config.get("backup", {})
        check("extras: backup storage, endpoint, region, interval and retention in the config",
              backup == {"enabled": True, "storage": "s3://ai-service-backups/prod",
                         "endpoint": "https://minio.storage.svc:9000", "region": "eu-west-1",
                         "interval": "12h", "retention_days": 14}, backup)
        audit = config.get("audit", {})
        audit_mount = next((m for m in c["volumeMounts"]
                            if m["mountPath"] == os.path.dirname(audit.get("sink", "/x/y"))), {})
        check("extras: with backup, the audit file rotates on a writable volume",
              audit.get("rotate", {}).get("max_bytes") == 67108864
              and audit_mount and not audit_mount.get("readOnly", False)
              and "emptyDir" in vols.get(audit_mount.get("name", ""), {}), (audit, audit_mount))
        env = {e["name"]: e for e in c.get("env", [])}
        check("extras: each pod backs up under its own name (POD_NAME from metadata.name)",
              env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "metadata.name", env.get("POD_NAME"))
        check("extras: backup credentials from the operator's Secret via envFrom",
              [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
              == ["ai-service-backup-credentials"], c.get("envFrom"))
        sa = one(docs, "ServiceAccount")
        check("extras: a ServiceAccount with the IRSA role annotation, used by the pods",
              sa is not None
              and sa["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
              == "arn:aws:iam::123456789012:role/ai-service-backup"
              and spec["template"]["spec"].get("serviceAccountName") == sa["metadata"]["name"])
        check("extras: the grace period leaves room to upload the last segment",
              spec["template"]["spec"]["terminationGracePeriodSeconds"] == 5 + 25 + 5 + 25,
              spec["template"]["spec"]["terminationGracePeriodSeconds"])

    if "routes" in renders:
        print("helm template (providers, routes, extraConfig)")
        docs = renders["routes"]
        _, config = workload(docs, "routes", replicas=3, image="ai-service:latest",
                             secret="ai-service", helm=True)
        if config is not None:
            check("routes: providers and routes copied verbatim",
                  config.get("providers") == {"local": {"kind": "echo", "chunk_delay": "10ms"}}
                  and config.get("routes", [{}])[0].get("name") == "assistant", config)
            check("routes: extraConfig deep-merged, documented values kept",
                  config["routing"] == {"max_retries": 3, "backoff_max": "5s"}
                  and config["log"]["level"] == "debug" and config["log"]["format"] == "json",
                  (config["routing"], config["log"]))

    if "cloud" in renders:
        print("helm template (cloud identities: IRSA and GKE workload identity)")
        docs = renders["cloud"]
        dep, config = workload(docs, "cloud", replicas=3, image="ai-service:latest",
                               secret="ai-service", helm=True)
        sa = one(docs, "ServiceAccount")
        annotations = (sa or {}).get("metadata", {}).get("annotations", {})
        check("cloud: a ServiceAccount is created with the IRSA role annotation",
              annotations.get("eks.amazonaws.com/role-arn")
              == "arn:aws:iam::123456789012:role/ai-gateway-bedrock", annotations)
        check("cloud: ... and the GKE workload identity annotation",
              annotations.get("iam.gke.io/gcp-service-account")
              == "ai-gateway@my-project.iam.gserviceaccount.com", annotations)
        pod = dep["spec"]["template"]["spec"] if dep else {}
        check("cloud: the pods run as that ServiceAccount",
              sa is not None and pod.get("serviceAccountName") == sa["metadata"]["name"],
              pod.get("serviceAccountName"))
        check("cloud: no Secret rendered (no key anywhere)", one(docs, "Secret") is None)
        c = (pod.get("containers") or [{}])[0]
        names = {e["name"] for e in c.get("env", [])}
        check("cloud: no AWS or Google credential in the pod's environment",
              not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                           "GOOGLE_APPLICATION_CREDENTIALS"} and not c.get("envFrom"),
              (names, c.get("envFrom")))
        providers = (config or {}).get("providers", {})
        check("cloud: Bedrock and Vertex AI providers take no key or key file",
              providers.get("bedrock", {}).get("kind") == "bedrock"
              and providers.get("vertex", {}).get("kind") == "vertex"
              and not any(k.startswith("api_key") or k == "credentials_file"
                          for p in providers.values() for k in p), providers)


if __name__ == "__main__":
    sys.exit(main())

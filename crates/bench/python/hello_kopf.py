"""The hello-world job written for kopf, for `hello-load --kopf`: one Pod per HelloWorld (owned
by it), and `status.pods` = 1 once the Pod exists, as kopf's documentation writes handlers
(the `kubernetes` client for the Pod, the handler's `patch` for the status).

Run with: python -m kopf run --standalone --namespace default hello_kopf.py
(KUBECONFIG names the cluster)."""
import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.enabled = False
    kubernetes.config.load_kube_config()


@kopf.on.create("example.com", "v1", "helloworlds")
def create_pod(spec, name, namespace, patch, **_):
    who = spec.get("who", "World")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [
                {"name": "hello", "image": "busybox", "command": ["echo", "Hello, %s!" % who]}
            ],
        },
    }
    kopf.adopt(pod)
    try:
        kubernetes.client.CoreV1Api().create_namespaced_pod(namespace, pod)
    except kubernetes.client.exceptions.ApiException as e:
        if e.status != 409:
            raise
    patch.status["pods"] = 1

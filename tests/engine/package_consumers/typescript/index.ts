// Another team's TypeScript project: the celery-platform package's CeleryPlatform, from the generated SDK.
//
// The engine tier writes settings-<stack>.json beside this file: `args` (the platform's inputs, by their
// schema names), `secretKeys` (the inputs to pass as secrets) and, to write the objects as YAML instead
// of applying them, `renderYamlToDirectory`.
import * as fs from "fs";
import * as path from "path";

import * as celery from "@pulumi/celery-platform";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

interface Settings {
    args: Record<string, unknown>;
    secretKeys: string[];
    renderYamlToDirectory?: string;
}

const settings: Settings = JSON.parse(
    fs.readFileSync(path.join(__dirname, `settings-${pulumi.getStack()}.json`), "utf8"),
);
const args: Record<string, unknown> = { ...settings.args };
for (const key of settings.secretKeys) {
    args[key] = pulumi.secret(settings.args[key]);
}

const providers: Record<string, pulumi.ProviderResource> = {};
if (settings.renderYamlToDirectory) {
    providers.kubernetes = new k8s.Provider("render", { renderYamlToDirectory: settings.renderYamlToDirectory });
}

const platform = new celery.CeleryPlatform("celery", args as unknown as celery.CeleryPlatformArgs, { providers });

export const namespace = platform.namespace;
export const secretName = platform.secretName;
export const brokerHost = platform.brokerHost;
export const brokerPort = platform.brokerPort;
export const brokerUrl = platform.brokerUrl;
export const workerDeployments = platform.workerDeployments;

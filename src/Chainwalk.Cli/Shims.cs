using Chainwalk.Host;

namespace Chainwalk.Cli;

/// <summary>Writes the shim scripts (one per tool) that run this chainwalk binary with the tool's verb.</summary>
internal static class Shims
{
    public static readonly string[] Tools =
    [
        "iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore",
        "iptables-nft", "ip6tables-nft", "iptables-nft-save", "iptables-nft-restore", "ip6tables-nft-save", "ip6tables-nft-restore",
        "iptables-legacy", "ip6tables-legacy", "iptables-legacy-save", "iptables-legacy-restore",
        "ip6tables-legacy-save", "ip6tables-legacy-restore", "ip", "sysctl",
    ];

    public static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Creates DIR/.shims with the scripts and returns its path.</summary>
    public static string Ensure(HostStore store)
    {
        string dir = Path.Combine(store.Directory, ".shims");
        Directory.CreateDirectory(dir);
        string exe = Environment.ProcessPath ?? "chainwalk";
        foreach (string tool in Tools)
        {
            string verb = tool.Replace("-nft", string.Empty, StringComparison.Ordinal).Replace("-legacy", string.Empty, StringComparison.Ordinal);
            string script = $"#!/bin/sh\n# Chainwalk shim: runs '{verb}' on the virtual host in $CHAINWALK_HOST\nexec {Quote(exe)} --host \"${{CHAINWALK_HOST:-{store.Directory}}}\" {verb} \"$@\"\n";
            string path = Path.Combine(dir, tool);
            if (!File.Exists(path) || File.ReadAllText(path) != script)
            {
                HostStore.WriteAtomic(path, script);
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                    UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            }
        }
        return dir;
    }
}

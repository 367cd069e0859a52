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

    /// <summary>
    /// How to start this very CLI again: the apphost itself, or "dotnet Chainwalk.Cli.dll" when it runs
    /// under the dotnet muxer (as from the test project's output directory).
    /// </summary>
    public static string SelfCommand()
    {
        string exe = Environment.ProcessPath ?? "chainwalk";
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet")
        {
            string dll = typeof(Shims).Assembly.Location;
            return Quote(exe) + " " + Quote(dll);
        }
        return Quote(exe);
    }

    public static string Quote(string s) => "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    /// <summary>Creates DIR/.shims with the scripts and returns its path.</summary>
    public static string Ensure(HostStore store)
    {
        string dir = Path.Combine(store.Directory, ".shims");
        Directory.CreateDirectory(dir);
        string command = SelfCommand();
        foreach (string tool in Tools)
        {
            string verb = tool.Replace("-nft", string.Empty, StringComparison.Ordinal).Replace("-legacy", string.Empty, StringComparison.Ordinal);
            // Pinned: the binary and the host are fixed when the shim is written, so a call is one exec.
            string script = $"#!/bin/sh\n# Chainwalk shim: runs '{verb}' on the virtual host {store.Directory}\nexec {command} --host {Quote(store.Directory)} {verb} \"$@\"\n";
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

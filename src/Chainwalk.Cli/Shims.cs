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
        "ip6tables-legacy-save", "ip6tables-legacy-restore", "ip", "sysctl", "ipset", "nfacct", "conntrack", "dmesg", "journalctl",
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
            // Standard input closed (tool <&-): /dev/null instead, as in ./chainwalk (Compat/StandardInput.cs says why).
            string script = $"#!/bin/sh\n# Chainwalk shim: runs '{verb}' on the virtual host {store.Directory}\n{{ true 3<&0; }} 2>/dev/null || exec 0</dev/null\nexec {command} --host {Quote(store.Directory)} {verb} \"$@\"\n";
            Write(Path.Combine(dir, tool), script);
        }
        Write(Path.Combine(dir, "sudo"), SudoShim);
        return dir;
    }

    /// <summary>
    /// Lab scripts say "sudo iptables …"; the real sudo resets PATH and would reach the machine's own
    /// iptables. This sudo drops its options and runs the command with the shims' PATH, unprivileged.
    /// </summary>
    private const string SudoShim = """
#!/bin/sh
# Chainwalk shim: sudo on the virtual host runs the command as is, so that iptables, ip and sysctl
# stay the shims (the real sudo would reset PATH and reach the machine's own tools).
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -u|-g|-U|-C|-h|-p|-r|-t|-T|-D|-R) shift 2 ;;
    --user=*|--group=*|--prompt=*|--chdir=*) shift ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: sudo COMMAND [ARG ...] (Chainwalk shim)" >&2; exit 1; }
exec "$@"

""";

    private static void Write(string path, string script)
    {
        if (!File.Exists(path) || File.ReadAllText(path) != script)
        {
            HostStore.WriteAtomic(path, script);
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
    }
}

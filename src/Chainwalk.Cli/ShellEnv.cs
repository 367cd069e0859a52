using Chainwalk.Compat;
using Chainwalk.Host;

namespace Chainwalk.Cli;

/// <summary>The env and shell verbs: shims for the compat tools, pinned to one host.</summary>
internal static class ShellEnv
{
    public static int PrintEnv(string[] args, HostStore store, ToolIo io)
    {
        bool json = args.Contains("--json");
        string shimDir = Shims.Ensure(store);
        if (json)
        {
            // {"host","shims","tools"}: what the shell lines below set up (docs/json.md, "env").
            using var lines = new Chainwalk.Syntax.JsonLines(io.Out);
            System.Text.Json.Utf8JsonWriter w = lines.Begin();
            w.WriteString("host", store.Directory);
            w.WriteString("shims", shimDir);
            w.WriteStartArray("tools");
            foreach (string t in Shims.Tools) w.WriteStringValue(t);
            w.WriteEndArray();
            lines.End();
            return 0;
        }
        io.Out.WriteLine($"export CHAINWALK_HOST={Shims.Quote(store.Directory)}");
        io.Out.WriteLine($"export PATH={Shims.Quote(shimDir)}:\"$PATH\"");
        io.Out.WriteLine("hash -r 2>/dev/null || true");
        return 0;
    }

    public static int RunShell(string[] args, HostStore store, ToolIo io)
    {
        string shimDir = Shims.Ensure(store);
        string shell = Environment.GetEnvironmentVariable("SHELL") is { Length: > 0 } s ? s : "/bin/sh";
        var psi = new System.Diagnostics.ProcessStartInfo(shell) { UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.Environment["CHAINWALK_HOST"] = store.Directory;
        psi.Environment["PATH"] = shimDir + ":" + Environment.GetEnvironmentVariable("PATH");
        io.Err.WriteLine($"chainwalk: shell on host {store.Directory} (iptables, ip, sysctl … are shims; exit to leave)");
        using var p = System.Diagnostics.Process.Start(psi)!;
        p.WaitForExit();
        return p.ExitCode;
    }
}

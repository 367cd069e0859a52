using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Tests.Support;

/// <summary>Runs a compat tool in process on a host directory and captures its output.</summary>
public static class CompatRun
{
    /// <summary>iptables (or ip6tables) with <paramref name="args"/>; returns the exit code, stdout and stderr.</summary>
    public static (int Rc, string Out, string Err) Iptables(IpFamily family, HostStore store, params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var io = new ToolIo { In = TextReader.Null, Out = o, Err = e };
        int rc = IptablesCompat.Run(family, [family.Tool(), .. args], store, io);
        return (rc, o.ToString(), e.ToString());
    }

    /// <summary>Splits a rule like the shell for the quoting the test rows use (double quotes only, no escapes).</summary>
    public static string[] SplitWords(string rule)
    {
        var list = new List<string>();
        var cur = new System.Text.StringBuilder();
        bool quoted = false, any = false;
        foreach (char c in rule)
        {
            if (c == '"')
            {
                quoted = !quoted;
                any = true;
            }
            else if (c == ' ' && !quoted)
            {
                if (any) list.Add(cur.ToString());
                cur.Clear();
                any = false;
            }
            else
            {
                cur.Append(c);
                any = true;
            }
        }
        if (any) list.Add(cur.ToString());
        return [.. list];
    }
}

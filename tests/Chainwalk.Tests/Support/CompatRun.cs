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
}

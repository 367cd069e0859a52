using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Tracing;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// NAT through the command line, one command per packet as a user types them: the bindings are saved with the
/// host's conntrack table between commands, replies are un-NATed by a later command, and the conntrack verb
/// lists and filters the NATed connections (--src-nat, --dst-nat).
/// </summary>
public sealed class NatCliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-natcli-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly HostStore _store;

    public NatCliTests()
    {
        _store = new HostStore(_dir);
        var quiet = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = new StringWriter() };
        foreach (string c in NatRig.Gateway)
        {
            string[] argv = c.Split(' ');
            (argv[0] == "sysctl" ? SysctlCompat.Run(argv, _store, quiet) : IpCompat.Run(argv, _store, quiet)).ShouldBe(0, c);
        }
        var rio = new ToolIo { In = new StringReader(NatGatewayTests.GatewayRules), Out = TextWriter.Null, Err = new StringWriter() };
        IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], _store, rio).ShouldBe(0, rio.Err.ToString());
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private string Trace(string args)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        TraceCommand.Run(args.Split(' '), _store, io).ShouldBe(0, io.Err.ToString());
        return io.Out.ToString()!;
    }

    private string Conntrack(string args)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        ConntrackCompat.Run(["conntrack", .. args.Split(' ', StringSplitOptions.RemoveEmptyEntries)], _store, io).ShouldBe(0, io.Err.ToString());
        return io.Out.ToString()!;
    }

    private const string Masq = "tcp      6 120 SYN_SENT src=10.0.1.20 dst=93.184.216.34 sport=40000 dport=80 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=80 dport=40000 mark=0 use=1";
    private const string Fwd = "tcp      6 120 SYN_SENT src=203.0.113.9 dst=198.51.100.2 sport=51000 dport=443 [UNREPLIED] src=10.0.1.50 dst=203.0.113.9 sport=8443 dport=51000 mark=0 use=1";

    [Fact]
    public void Bindings_survive_between_commands_and_the_conntrack_verb_filters_them()
    {
        Trace("-i eth1 -p tcp -s 10.0.1.20 -d 93.184.216.34 --sport 40000 --dport 80 --seq 1000");
        Trace("-i eth0 -p tcp -s 203.0.113.9 -d 198.51.100.2 --sport 51000 --dport 443 --seq 1000");
        Conntrack("-L --src-nat").ShouldBe(Masq + "\n");
        Conntrack("-L --dst-nat").ShouldBe(Fwd + "\n");

        string reply = Trace("-i eth0 -p tcp -s 93.184.216.34 -d 198.51.100.2 --sport 80 --dport 40000 --tcp-flags SYN,ACK --seq 5000 --ack 1001");
        reply.ShouldContain("un-SNAT (reply destination) 198.51.100.2:40000 -> 10.0.1.20:40000");
        reply.ShouldContain("forwarded:eth1");
    }
}

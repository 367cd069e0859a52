using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tracing;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The conntrack verb (conntrack-tools 1.4.7) on a host whose table was filled by traced packets. Messages, exit
/// codes and line formats as recorded from the real tool in a namespace (kernel 6.18).
/// </summary>
public sealed class ConntrackCompatTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-ctverb-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly HostStore _store;

    public ConntrackCompatTests()
    {
        _store = new HostStore(_dir);
        var quiet = new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = new StringWriter() };
        foreach (string c in new[] { "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 10.0.0.1/24 dev eth0" })
            IpCompat.Run(c.Split(' '), _store, quiet).ShouldBe(0);
        var rio = new ToolIo { In = new StringReader("*filter\n-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT\nCOMMIT\n"), Out = TextWriter.Null, Err = new StringWriter() };
        IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], _store, rio).ShouldBe(0);
        Trace("-i eth0 -p tcp -s 10.0.0.9 -d 10.0.0.1 --sport 4000 --dport 22 --seq 1");
        Trace("--local -p tcp -s 10.0.0.1 -d 10.0.0.9 --sport 22 --dport 4000 --tcp-flags SYN,ACK --seq 100 --ack 2");
        Trace("-i eth0 -p tcp -s 10.0.0.9 -d 10.0.0.1 --sport 4000 --dport 22 --tcp-flags ACK --seq 2 --ack 101");
        Trace("-i eth0 -p udp -s 10.0.0.9 -d 10.0.0.1 --sport 5000 --dport 53");
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private void Trace(string args)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        TraceCommand.Run(args.Split(' '), _store, io).ShouldBe(0, io.Err.ToString());
    }

    private (int Rc, string Out, string Err) Conntrack(string args)
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        int rc = ConntrackCompat.Run(["conntrack", .. args.Split(' ', StringSplitOptions.RemoveEmptyEntries)], _store, io);
        return (rc, io.Out.ToString()!, io.Err.ToString()!);
    }

    private const string Tcp = "tcp      6 432000 ESTABLISHED src=10.0.0.9 dst=10.0.0.1 sport=4000 dport=22 src=10.0.0.1 dst=10.0.0.9 sport=22 dport=4000 [ASSURED] mark=0 use=1";
    private const string Udp = "udp      17 30 src=10.0.0.9 dst=10.0.0.1 sport=5000 dport=53 [UNREPLIED] src=10.0.0.1 dst=10.0.0.9 sport=53 dport=5000 mark=0 use=1";
    private const string Pre = "conntrack v1.4.7 (conntrack-tools): ";
    private const string Try = "Try `conntrack -h' or 'conntrack --help' for more information.\n";

    public static TheoryData<string, int, string, string> Cases => new()
    {
        { "-L", 0, Udp + "\n" + Tcp + "\n", Pre + "2 flow entries have been shown.\n" },
        { "-L conntrack -p udp", 0, Udp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L -p tcp --state ESTABLISHED", 0, Tcp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L -p udp --dport 53", 0, Udp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L -p udp --sport 53", 0, "", Pre + "0 flow entries have been shown.\n" },
        { "-L -s 10.0.0.9 -d 10.0.0.2", 0, "", Pre + "0 flow entries have been shown.\n" },
        { "-L -u UNREPLIED", 0, Udp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L -u ASSURED", 0, Tcp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L -f ipv6", 0, "", Pre + "0 flow entries have been shown.\n" },
        { "-L -m 1/1", 0, "", Pre + "0 flow entries have been shown.\n" },
        { "-L -n", 0, "", Pre + "0 flow entries have been shown.\n" },
        { "-L -p udp -o extended", 0, "ipv4     2 " + Udp + "\n", Pre + "1 flow entries have been shown.\n" },
        { "-L expect", 0, "", Pre + "0 expectations have been shown.\n" },
        { "-C", 0, "2\n", "" },
        { "-L --sport 53", 2, "", Pre + "unknown option `--sport'\n" + Try },
        { "-L --state ESTABLISHED", 2, "", Pre + "unknown option `--state'\n" + Try },
        { "-L -p tcp --state FOO", 2, "", Pre + "unknown TCP state `FOO'\n" + Try },
        { "-L -p foo", 2, "", Pre + "`foo' unsupported protocol\n" + Try },
        { "-L -o foo", 2, "", Pre + "Bad parameter `foo'\n" + Try },
        { "-L -s 999.1.1.1", 2, "", Pre + "Invalid IP address `999.1.1.1'\n" + Try },
        { "-C -p udp", 2, "", Pre + "Illegal option `--protonum' with this command\n" + Try },
        { "-X", 2, "", Pre + "unknown option `-X'\n" + Try },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Conntrack_answers_like_conntrack_tools(string args, int rc, string stdout, string stderr)
    {
        var r = Conntrack(args);
        r.ShouldBe((rc, stdout, stderr));
    }

    [Fact]
    public void Delete_removes_the_matching_entries_and_says_how_many()
    {
        Conntrack("-D -p udp").ShouldBe((0, Udp + "\n", Pre + "1 flow entries have been deleted.\n"));
        Conntrack("-D -p udp").ShouldBe((1, "", Pre + "0 flow entries have been deleted.\n"));
        Conntrack("-C").Out.ShouldBe("1\n");
        Conntrack("-F").ShouldBe((0, "", Pre + "connection tracking table has been emptied.\n"));
        Conntrack("-L").ShouldBe((0, "", Pre + "0 flow entries have been shown.\n"));
    }

    [Fact]
    public void Events_show_what_the_packets_did_since_the_last_call()
    {
        var r = Conntrack("-E");
        r.Rc.ShouldBe(0);
        r.Out.ShouldBe("""
                [NEW] tcp      6 120 SYN_SENT src=10.0.0.9 dst=10.0.0.1 sport=4000 dport=22 [UNREPLIED] src=10.0.0.1 dst=10.0.0.9 sport=22 dport=4000
             [UPDATE] tcp      6 60 SYN_RECV src=10.0.0.9 dst=10.0.0.1 sport=4000 dport=22 src=10.0.0.1 dst=10.0.0.9 sport=22 dport=4000
             [UPDATE] tcp      6 432000 ESTABLISHED src=10.0.0.9 dst=10.0.0.1 sport=4000 dport=22 src=10.0.0.1 dst=10.0.0.9 sport=22 dport=4000 [ASSURED]
                [NEW] udp      17 30 src=10.0.0.9 dst=10.0.0.1 sport=5000 dport=53 [UNREPLIED] src=10.0.0.1 dst=10.0.0.9 sport=53 dport=5000

            """.Replace("\r", ""));
        r.Err.ShouldBe(Pre + "4 flow events have been shown.\n");
        Conntrack("-E").ShouldBe((0, "", Pre + "0 flow events have been shown.\n"));
        Conntrack("-D -p udp");
        Conntrack("-E").Out.ShouldBe("[DESTROY] udp      17 30 src=10.0.0.9 dst=10.0.0.1 sport=5000 dport=53 [UNREPLIED] src=10.0.0.1 dst=10.0.0.9 sport=53 dport=5000 [USERSPACE] portid=0\n");
    }

    [Fact]
    public void Statistics_have_the_tools_layout()
    {
        Conntrack("-S").Out.ShouldBe("cpu=0   \tfound=0 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 clash_resolve=0 chaintoolong=0 \n");
    }
}

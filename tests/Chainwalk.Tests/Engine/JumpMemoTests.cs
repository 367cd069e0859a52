using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The chain a jump enters, as the compiled form remembers it on the jump (<c>TargetUse.ResolvedJump</c>, made when the
/// compiled form is built): the packet goes where a lookup by name would send it, also after a chain was renamed behind
/// the compiled form's back (the memo keeps the name string it checked), with or without the compiled form.
/// </summary>
public class JumpMemoTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :A - [0:0]
        :B - [0:0]
        -A FORWARD -p tcp -j A
        -A A -p tcp --dport 22 -j DROP
        -A A -j B
        -A B -p tcp --dport 80 -j DROP
        COMMIT

        """;

    /// <summary>What happens to the rule set after the compiled form was built, before the packets.</summary>
    public enum Change
    {
        None,
        RenameA,
        RenameAAndMakeANew,
    }

    public static TheoryData<Change, bool, ushort, string> Cases => new()
    {
        { Change.None, true, 22, "dropped" }, { Change.None, true, 80, "dropped" }, { Change.None, true, 443, "forwarded:eth0" },
        { Change.None, false, 80, "dropped" },
        // The jump's name is "A": once A is renamed (the jump keeps its old target name, as the walker sees a rule edited
        // behind its back), a lookup of "A" finds nothing and the rule is passed over; a new chain A is entered instead.
        { Change.RenameA, true, 22, "forwarded:eth0" }, { Change.RenameA, false, 22, "forwarded:eth0" },
        { Change.RenameAAndMakeANew, true, 22, "forwarded:eth0" }, { Change.RenameAAndMakeANew, true, 443, "dropped" },
        { Change.RenameAAndMakeANew, false, 443, "dropped" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_jump_goes_where_its_memo_or_a_lookup_by_name_says(Change change, bool compiled, ushort port, string fate)
    {
        VirtualHost host = EngineHost.Create(Rules);
        CompiledRules c = CompiledRules.Build(host.V4);
        Table filter = host.V4.Find("filter")!;
        switch (change)
        {
            case Change.RenameA:
                filter.RenameUserChain("A", "A2");
                break;
            case Change.RenameAAndMakeANew:
                filter.RenameUserChain("A", "A2");
                Ruleset fresh = EngineHost.Rules(IpFamily.V4, "*filter\n:A - [0:0]\n-A A -p tcp --dport 443 -j DROP\nCOMMIT\n");
                filter.AddUserChain(fresh.Find("filter")!.Find("A")!);
                break;
        }
        var nf = new Netfilter(host) { Compiled = compiled ? c : null };
        PacketResult r = nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.9", "10.0.0.9", 40000, port)));
        string.Join(",", r.Fate).ShouldBe(fate);
    }
}

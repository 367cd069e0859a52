using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>
/// <c>-m state --state LIST</c>: the conntrack match with only a state list (libxt_conntrack.c's "state"
/// alias, xt_state.c). Saved and listed under its own name; SNAT and DNAT are not state names here.
/// </summary>
public sealed class StateMatch : XtExtension<ConntrackData>
{
    private const int OState = 0;

    public override string Name => "state";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("state", OState, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    private static readonly (string Name, CtState Value)[] Names =
    [
        ("INVALID", CtState.Invalid), ("NEW", CtState.New), ("ESTABLISHED", CtState.Established), ("RELATED", CtState.Related),
        ("UNTRACKED", CtState.Untracked),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ConntrackData d)
    {
        d.MatchFlags = ConntrackFlags.State | ConntrackFlags.StateAlias;
        d.States = ParseStates(argument!);
        if (invert) d.InvertFlags |= ConntrackFlags.State;
    }

    private static CtState ParseStates(string arg)
    {
        CtState mask = CtState.None;
        int pos = 0;
        int comma;
        while ((comma = arg.IndexOf(',', pos)) >= 0)
        {
            if (comma == pos || !XtParse.TryPrefixName(arg.AsSpan(pos, comma - pos), Names, out CtState v))
                throw XtablesException.Param($"Bad state \"{arg[pos..]}\"");
            mask |= v;
            pos = comma + 1;
        }
        if (pos == arg.Length)
            throw XtablesException.Param("\"--state\" requires a list of states with no spaces, e.g. ESTABLISHED,RELATED");
        if (!XtParse.TryPrefixName(arg.AsSpan(pos), Names, out CtState last)) throw XtablesException.Param($"Bad state \"{arg[pos..]}\"");
        return mask | last;
    }

    /// <summary>state_mt (xt_state.c): the state bit of the packet's ctinfo, UNTRACKED or INVALID.</summary>
    /// <summary>The state by ctinfo, which the walk memo compares.</summary>
    public override bool FlowStable(ExtensionData data) => true;

    protected override bool Match(PacketContext ctx, ConntrackData d) => ConntrackMatch.Evaluate(ctx, d);

    protected override void Save(StringBuilder sb, ConntrackData d, IpFamily family) => ConntrackMatch.Dump(sb, d, "--", family, true);

    protected override void Print(StringBuilder sb, ConntrackData d, IpFamily family, bool numeric) => ConntrackMatch.Dump(sb, d, string.Empty, family, numeric);
}

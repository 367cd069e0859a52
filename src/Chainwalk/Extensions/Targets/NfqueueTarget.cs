using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>NFQUEUE revision 3 (struct xt_NFQ_info_v3).</summary>
public sealed class NfqueueData : ExtensionData
{
    public const ushort FlagBypass = 1, FlagCpuFanout = 2;

    /// <summary>The first queue.</summary>
    public ushort QueueNum;

    /// <summary>How many queues, from <see cref="QueueNum"/> on (1 = just one); 0 is the 65536 that did not fit.</summary>
    public ushort QueuesTotal = 1;

    public ushort Flags;
}

/// <summary>
/// <c>-j NFQUEUE</c> revision 3 (libxt_NFQUEUE.c, xt_NFQUEUE.c): --queue-num, --queue-balance FIRST:LAST
/// (1.8.9 fills an empty LAST with 65535, and 0:65535 overflows the 16-bit count, which the kernel refuses),
/// --queue-bypass, --queue-cpu-fanout (needs --queue-balance).
/// </summary>
public sealed class NfqueueTarget : XtExtension<NfqueueData>
{
    private const int ONum = 0, OBalance = 1, OBypass = 2, OCpuFanout = 3;

    public override string Name => "NFQUEUE";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("queue-num", ONum) { Excludes = 1UL << OBalance },
        new("queue-balance", OBalance) { Excludes = 1UL << ONum },
        new("queue-bypass", OBypass, OptionArg.None),
        new("queue-cpu-fanout", OCpuFanout, OptionArg.None) { Also = 1UL << OBalance },
    ];

    protected override void Init(ParseContext ctx, NfqueueData data) => data.Revision = 3;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, NfqueueData d)
    {
        switch (option.Id)
        {
            case ONum:
                d.QueueNum = (ushort)XtParse.OptUInt(argument!, 0, ushort.MaxValue, Name, option.Name);
                break;
            case OBalance:
                {
                    ushort[] r = XtParse.OptUInt16Range(argument!, Name, option.Name);
                    if (r.Length != 2) throw ctx.Error($"Bad range \"{argument}\"");
                    if (r[0] >= r[1]) throw ctx.Error($"{r[0]} should be less than {r[1]}");
                    d.QueueNum = r[0];
                    d.QueuesTotal = unchecked((ushort)(r[1] - r[0] + 1));
                    break;
                }
            case OBypass:
                d.Flags |= NfqueueData.FlagBypass;
                break;
            case OCpuFanout:
                d.Flags |= NfqueueData.FlagCpuFanout;
                break;
        }
    }

    private static void Append(StringBuilder sb, NfqueueData d, string balance, string num, string bypass, string fanout)
    {
        uint last = d.QueuesTotal;
        if (last > 1)
        {
            last += (uint)d.QueueNum - 1;
            sb.Append(balance).Append(d.QueueNum).Append(':').Append(last);
        }
        else
        {
            sb.Append(num).Append(d.QueueNum);
        }
        if ((d.Flags & NfqueueData.FlagBypass) != 0) sb.Append(bypass);
        if ((d.Flags & NfqueueData.FlagCpuFanout) != 0) sb.Append(fanout);
    }

    protected override void Save(StringBuilder sb, NfqueueData d, IpFamily family) =>
        Append(sb, d, " --queue-balance ", " --queue-num ", " --queue-bypass", " --queue-cpu-fanout");

    protected override void Print(StringBuilder sb, NfqueueData d, IpFamily family, bool numeric) =>
        Append(sb, d, " NFQUEUE balance ", " NFQUEUE num ", " bypass", " cpu-fanout");

    protected override string? CheckEntry(RuleCheckContext ctx, NfqueueData d) =>
        d.QueuesTotal == 0 ? RulesetEditor.InvalidArgument : null;
}

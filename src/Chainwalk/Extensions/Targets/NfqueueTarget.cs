using System.Buffers.Binary;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

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

    /// <summary>The boot-time random seed of the queue hash (jhash_initval, get_random_once): one per virtual host.</summary>
    private sealed class HashSeed
    {
        public uint Value;
    }

    /// <summary>
    /// xt_NFQUEUE.c nfqueue_tg_v3: the first queue, or with --queue-balance one of the range chosen by CPU
    /// (--queue-cpu-fanout; the virtual host has CPU 0) or by a hash of the addresses that is the same in both
    /// directions (nfqueue_hash). The fate is queued:N. No userspace program listens on the virtual host's
    /// queues: the kernel (nf_queue, -ESRCH) drops the packet, or with --queue-bypass lets it go on as if
    /// ACCEPTed by this table; the explanation says which.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, NfqueueData data)
    {
        uint total = data.QueuesTotal == 0 ? 65536u : data.QueuesTotal;
        uint queue = data.QueueNum;
        if (total > 1)
        {
            if ((data.Flags & NfqueueData.FlagCpuFanout) != 0)
            {
                queue += (uint)ctx.Skb.Cpu % total;
            }
            else
            {
                HashSeed seed = ctx.Named("nfqueue", "jhash_initval", () => new HashSeed { Value = (uint)ctx.Random.NextInt64(0, 1L << 32) });
                queue += Jhash.Scale(Hash(ctx.Packet, seed.Value), total);
            }
        }
        bool bypass = (data.Flags & NfqueueData.FlagBypass) != 0;
        ctx.Note(bypass
            ? $"NFQUEUE {queue}: no program listens on this queue; with --queue-bypass the kernel lets the packet go on (accepted by this table)"
            : $"NFQUEUE {queue}: no program listens on this queue; the kernel drops the packet");
        return Verdict.Queue((ushort)queue, bypass);
    }

    /// <summary>
    /// hash_v4 / hash_v6 of xt_NFQUEUE.h. The kernel compares the addresses as they lie in memory read as
    /// host-order (little-endian) words, so the comparisons here read them little-endian too.
    /// </summary>
    private static uint Hash(Packet p, uint initval)
    {
        ReadOnlySpan<byte> s = p.SourceBytes, d = p.DestinationBytes;
        if (p.Family == IpFamily.V4)
        {
            uint sa = BinaryPrimitives.ReadUInt32LittleEndian(s), da = BinaryPrimitives.ReadUInt32LittleEndian(d);
            return sa < da ? Jhash.ThreeWords(sa, da, p.Bytes[9], initval) : Jhash.ThreeWords(da, sa, p.Bytes[9], initval);
        }
        uint s3 = BinaryPrimitives.ReadUInt32LittleEndian(s[12..]), d3 = BinaryPrimitives.ReadUInt32LittleEndian(d[12..]);
        uint s1 = BinaryPrimitives.ReadUInt32LittleEndian(s[4..]), d1 = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        uint a, b;
        if (s3 < d3) (a, b) = (s3, d3);
        else (a, b) = (d3, s3);
        uint c = s1 < d1 ? s1 : d1;
        return Jhash.ThreeWords(a, b, c, initval);
    }
}

using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m cluster</c> (struct xt_cluster_match_info).</summary>
public sealed class ClusterData : ExtensionData
{
    public uint TotalNodes;

    /// <summary>Bit n-1 set = this host handles node n.</summary>
    public uint NodeMask;

    public uint HashSeed;

    /// <summary>XT_CLUSTER_F_INV.</summary>
    public bool Invert;
}

/// <summary><c>-m cluster</c> (libxt_cluster.c, xt_cluster.c).</summary>
public sealed class ClusterMatch : XtExtension<ClusterData>
{
    private const int OTotal = 0, OLocalNode = 1, OLocalMask = 2, OSeed = 3;
    private const uint NodesMax = 32;

    public override string Name => "cluster";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("cluster-total-nodes", OTotal, OptionArg.Required, OptFlags.Mandatory),
        new("cluster-local-node", OLocalNode, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OLocalMask },
        new("cluster-local-nodemask", OLocalMask, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OLocalNode },
        new("cluster-hash-seed", OSeed, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ClusterData d)
    {
        switch (option.Id)
        {
            case OTotal:
                d.TotalNodes = (uint)XtParse.UIntBad(argument!, 1, NodesMax, Name, option.Name);
                break;
            case OLocalNode:
                {
                    uint n = (uint)XtParse.UIntBad(argument!, 1, NodesMax, Name, option.Name);
                    if (invert) d.Invert = true;
                    d.NodeMask = 1u << (int)(n - 1);
                    break;
                }
            case OLocalMask:
                d.NodeMask = (uint)XtParse.UIntBad(argument!, 1, NodesMax, Name, option.Name);
                if (invert) d.Invert = true;
                break;
            case OSeed:
                d.HashSeed = (uint)XtParse.UIntBad(argument!, 0, uint.MaxValue, Name, option.Name);
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, ClusterData d)
    {
        const ulong nodeTest = (1 << OTotal) | (1 << OLocalNode) | (1 << OSeed);
        const ulong maskTest = (1 << OTotal) | (1 << OLocalMask) | (1 << OSeed);
        if ((d.Given & nodeTest) == nodeTest)
        {
            if (d.NodeMask >= 1UL << (int)d.TotalNodes)
                throw ctx.Error("cluster match: `--cluster-local-node' must be <= `--cluster-total-nodes'");
            return;
        }
        if ((d.Given & maskTest) == maskTest)
        {
            if (d.NodeMask >= 1UL << (int)d.TotalNodes)
                throw ctx.Error("cluster match: `--cluster-local-nodemask' too big for `--cluster-total-nodes'");
            return;
        }
        if ((d.Given & ((1 << OLocalNode) | (1 << OLocalMask))) == 0)
            throw ctx.Error("cluster match: `--cluster-local-node' or`--cluster-local-nodemask' is missing");
    }

    private static string Hex8(uint v) => "0x" + v.ToString("x8", CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, ClusterData d, IpFamily family)
    {
        sb.Append(d.Invert ? " ! --cluster-local-nodemask " : " --cluster-local-nodemask ").Append(Hex8(d.NodeMask))
          .Append(" --cluster-total-nodes ").Append(XtParse.Dec(d.TotalNodes))
          .Append(" --cluster-hash-seed ").Append(Hex8(d.HashSeed));
    }

    protected override void Print(StringBuilder sb, ClusterData d, IpFamily family, bool numeric)
    {
        sb.Append(" cluster ").Append(d.Invert ? "!node_mask=" : "node_mask=").Append(Hex8(d.NodeMask))
          .Append(" total_nodes=").Append(XtParse.Dec(d.TotalNodes)).Append(" hash_seed=").Append(Hex8(d.HashSeed));
    }

    /// <summary>
    /// xt_cluster.c: needs the packet's conntrack entry (none → no match, even with !); the hash is jhash of
    /// the original direction's source address (as the kernel reads it from memory: little-endian words on
    /// x86) with the seed, scaled to the node count. NAT and expectation masters are not modelled: the
    /// original source is the packet's source, or its destination for a reply.
    /// </summary>
    protected override bool Match(PacketContext ctx, ClusterData d)
    {
        if (ctx.Skb.Conntrack is null) return false;
        bool reply = ctx.Skb.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply;
        ReadOnlySpan<byte> addr = reply ? ctx.Packet.DestinationBytes : ctx.Packet.SourceBytes;
        uint hash = ctx.Family == IpFamily.V4
            ? Jhash.OneWord(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(addr), d.HashSeed)
            : Jhash.Words(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(addr), d.HashSeed);
        uint node = Jhash.Scale(hash, d.TotalNodes);
        return (((1u << (int)node) & d.NodeMask) != 0) ^ d.Invert;
    }

    /// <summary>The 0-based node xt_cluster assigns to an original source address (for tests and explanations).</summary>
    public static uint NodeOf(IpFamily family, ReadOnlySpan<byte> source, uint seed, uint totalNodes)
    {
        uint hash = family == IpFamily.V4
            ? Jhash.OneWord(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(source), seed)
            : Jhash.Words(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(source), seed);
        return Jhash.Scale(hash, totalNodes);
    }
}

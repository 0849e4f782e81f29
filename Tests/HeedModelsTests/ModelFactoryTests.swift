import HeedCore
import HeedData
import Testing
@testable import HeedModels

/// The registry builds `base` and `din` for a schema and explains what it cannot build.
@Suite struct ModelFactoryTests {
    static func schema(category: Bool = true, histCategories: Bool = true, history: Bool = true) -> SampleSchema {
        var slots = [FeatureSlot(name: "user", group: .user, kind: .single, maxLength: 1),
                     FeatureSlot(name: "item", group: .item, kind: .single, maxLength: 1)]
        if category { slots.append(FeatureSlot(name: "category", group: .category, kind: .single, maxLength: 1)) }
        slots.append(FeatureSlot(name: "attributes", group: .attribute, kind: .sequence, maxLength: 16))
        if history { slots.append(FeatureSlot(name: "hist_items", group: .item, kind: .sequence, maxLength: 50)) }
        if histCategories {
            slots.append(FeatureSlot(name: "hist_categories", group: .category, kind: .sequence, maxLength: 50, alignedWith: "hist_items"))
        }
        return SampleSchema(slots: slots, labels: ["click"], dense: [])
    }

    static func config(_ name: String) -> ModelConfig {
        var c = ModelConfig()
        c.name = name
        return c
    }

    /// The run config's names choose the pooling and the attention weighting.
    @Test func runConfigNamesChooseThePoolingAndTheWeighting() throws {
        var c = ModelConfig()
        #expect(try BehaviourModelOptions(c) == BehaviourModelOptions())
        c.attentionWeighting = "softmax"
        c.basePooling = "mean"
        #expect(try BehaviourModelOptions(c) == BehaviourModelOptions(basePooling: .mean, attentionWeighting: .softmax))
        c.attentionWeighting = "max"
        #expect(throws: HeedError.self) { try BehaviourModelOptions(c) }
    }

    @Test(arguments: ["base", "din"])
    func buildsModelsWithSharedItemAndCategoryTables(name: String) throws {
        let model = try ModelFactory.makeStatefulModel(config: Self.config(name), schema: Self.schema(), seed: 1)
        #expect(model.name == name)
        #expect(model.tableDims == [FeatureGroup.item.rawValue: 18, FeatureGroup.category.rawValue: 18])
        #expect(model.inputFields == ["item", "category", "hist_items", "hist_categories"])
        #expect(model.denseParameters().count == model.denseParameterCount)
        #expect(try ModelFactory.tableDims(config: Self.config(name), schema: Self.schema()) == model.tableDims)

        let withUser = try ModelFactory.makeStatefulModel(config: Self.config(name), schema: Self.schema(), seed: 1,
                                                          options: BehaviourModelOptions(useUserEmbedding: true))
        #expect(withUser.tableDims[FeatureGroup.user.rawValue] == 18)
        #expect(withUser.inputFields.first == "user")

        let noCategories = try ModelFactory.makeStatefulModel(config: Self.config(name), schema: Self.schema(category: false, histCategories: false), seed: 1)
        #expect(noCategories.tableDims == [FeatureGroup.item.rawValue: 18])
    }

    @Test func dinAddsTheAttentionUnitToTheBaseParameters() throws {
        let base = try ModelFactory.makeModel(config: Self.config("base"), schema: Self.schema(), seed: 1)
        let din = try ModelFactory.makeModel(config: Self.config("din"), schema: Self.schema(), seed: 1)
        // Attention MLP over 4E = 144 inputs: 144·80 + 80 + 80 (Dice α) + 80·40 + 40 + 40 + 40 + 1.
        #expect(din.denseParameterCount - base.denseParameterCount == 144 * 80 + 160 + 80 * 40 + 80 + 41)
        // Same seed, same weights: the flat vector is deterministic.
        let again = try ModelFactory.makeModel(config: Self.config("din"), schema: Self.schema(), seed: 1)
        #expect(din.denseParameters() == again.denseParameters())
        let other = try ModelFactory.makeModel(config: Self.config("din"), schema: Self.schema(), seed: 2)
        #expect(din.denseParameters() != other.denseParameters())
    }

    /// `model.attention_activation` reaches DIN's attention MLP only: ReLU there drops the
    /// attention unit's 80 + 40 Dice α while the prediction MLP keeps its Dice; PReLU keeps the
    /// count but starts its slopes at 0.25 where Dice's α start at 0; a bad name is an error.
    @Test func attentionActivationChoosesTheAttentionMLPsActivation() throws {
        let dice = try ModelFactory.makeModel(config: Self.config("din"), schema: Self.schema(), seed: 1)
        var c = Self.config("din")
        c.attentionActivation = "relu"
        let relu = try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1)
        #expect(dice.denseParameterCount - relu.denseParameterCount == 80 + 40)
        c.attentionActivation = "prelu"
        let prelu = try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1)
        #expect(prelu.denseParameterCount == dice.denseParameterCount)
        #expect(prelu.denseParameters() != dice.denseParameters())
        c.attentionActivation = "dice"
        #expect(try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1).denseParameters() == dice.denseParameters())
        c.attentionActivation = "swish"
        #expect { try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1) } throws: { e in
            (e as? HeedError)?.message.contains("attention_activation 'swish'") == true
        }
        let toml = try RunConfig(toml: TOMLDocument(text: "[model]\nname = \"din\"\nattention_activation = \"prelu\"\n", source: "din.toml"))
        #expect(toml.model.attentionActivation == "prelu")
    }

    @Test func unknownModelNameIsAConfigErrorListingTheKnownOnes() {
        #expect { try ModelFactory.makeModel(config: Self.config("dien"), schema: Self.schema(), seed: 1) } throws: { e in
            guard let e = e as? HeedError else { return false }
            return e.code == .config && e.message.contains("'dien'") && e.message.contains("base, din")
        }
    }

    @Test(arguments: ["base", "din"])
    func missingSlotsAreConfigErrorsNamingModelAndSlot(name: String) {
        #expect { try ModelFactory.makeModel(config: Self.config(name), schema: Self.schema(histCategories: false, history: false), seed: 1) } throws: { e in
            guard let e = e as? HeedError else { return false }
            return e.code == .config && e.message.contains("model \(name)") && e.message.contains("'hist_items'")
        }
        #expect { try ModelFactory.makeModel(config: Self.config(name), schema: Self.schema(histCategories: false), seed: 1) } throws: { e in
            (e as? HeedError)?.message.contains("'hist_categories'") == true
        }
    }

    @Test func badActivationAndSizesAreConfigErrors() {
        var c = Self.config("din")
        c.activation = "swish"
        #expect { try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1) } throws: { e in
            (e as? HeedError)?.message.contains("'swish'") == true
        }
        c = Self.config("base")
        c.hidden = [200, 0]
        #expect { try ModelFactory.makeModel(config: c, schema: Self.schema(), seed: 1) } throws: { e in
            (e as? HeedError)?.message.contains("hidden") == true
        }
    }
}
